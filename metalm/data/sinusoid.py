"""Sinusoid regression tasks (Finn et al. 2017, arXiv:1703.03400, Sec. 5.1).

Each task is ``y = A sin(x - phase)`` with ``A ~ U[0.1, 5]``, ``phase ~ U[0, pi]`` and
inputs ``x ~ U[-5, 5]``; everything is sampled inside jit.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from metalm import types


class Sinusoids(NamedTuple):
  """The functions of T tasks."""

  amplitude_T: jax.Array
  phase_T: jax.Array

  def __call__(self, x_TxN: jax.Array) -> jax.Array:
    return self.amplitude_T[:, None] * jnp.sin(x_TxN - self.phase_T[:, None])


def sample_functions(
    key, num_tasks: int, *, amplitude=(0.1, 5.0), phase=(0.0, math.pi)
) -> Sinusoids:
  amplitude_key, phase_key = jax.random.split(key)
  uniform = lambda k, bounds: jax.random.uniform(
      k, (num_tasks,), minval=bounds[0], maxval=bounds[1]
  )
  return Sinusoids(uniform(amplitude_key, amplitude), uniform(phase_key, phase))


def sample_tasks(
    key,
    functions: Sinusoids,
    *,
    num_support: int,
    num_query: int,
    x_range=(-5.0, 5.0),
) -> types.TaskBatch:
  """Draws K support and Q query points of each function, shaped ``[T, N, 1]``."""
  num_tasks = functions.amplitude_T.shape[0]
  x_TxN = jax.random.uniform(
      key, (num_tasks, num_support + num_query), minval=x_range[0], maxval=x_range[1]
  )
  x, y = x_TxN[..., None], functions(x_TxN)[..., None]
  return types.TaskBatch(
      x[:, :num_support], y[:, :num_support], x[:, num_support:], y[:, num_support:]
  )


def sampler(
    *,
    num_support: int,
    num_query: int,
    amplitude=(0.1, 5.0),
    phase=(0.0, math.pi),
    x_range=(-5.0, 5.0),
) -> types.TaskSampler:
  """A ``TaskSampler`` of sinusoid tasks with K=``num_support`` shots."""

  def sample(key, num_tasks: int) -> types.TaskBatch:
    function_key, point_key = jax.random.split(key)
    functions = sample_functions(
        function_key, num_tasks, amplitude=amplitude, phase=phase
    )
    return sample_tasks(
        point_key,
        functions,
        num_support=num_support,
        num_query=num_query,
        x_range=x_range,
    )

  return types.TaskSampler(sample)
