"""Pytree types shared by models, meta-learners, samplers and the training loop."""

from typing import Any, NamedTuple

import jax

Params = Any  # A pytree of learnable arrays.
ModelState = Any  # A pytree of non-learned collections, e.g. batch statistics.
PRNGKey = jax.Array


class Batch(NamedTuple):
  """Inputs and targets of one set (a support set, a query set, a batch)."""

  x: jax.Array
  y: jax.Array


class TaskBatch(NamedTuple):
  """Support and query sets of one task, or of T tasks with a leading task axis.

  Shapes: ``support_x [T, S, ...]``, ``support_y [T, S, ...]``,
  ``query_x [T, Q, ...]``, ``query_y [T, Q, ...]`` (no T axis for one task).
  """

  support_x: jax.Array
  support_y: jax.Array
  query_x: jax.Array
  query_y: jax.Array

  @property
  def support(self) -> Batch:
    return Batch(self.support_x, self.support_y)

  @property
  def query(self) -> Batch:
    return Batch(self.query_x, self.query_y)

  @property
  def num_tasks(self) -> int:
    return self.support_x.shape[0]


class TaskSampler(NamedTuple):
  """``sample(key, num_tasks) -> TaskBatch`` with static shapes (jit-compatible)."""

  sample: Any
