"""The balancer contracts and the per-task gradient machinery.

Balancers are optax-shaped and see a leading task axis T:

  LossBalancer:  init(num_tasks) -> state
                 update(losses_T, state, *, key) -> (weights_T, state)
  GradBalancer:  init(num_tasks) -> state
                 update(grads_T, state, *, losses_T, key) -> (direction, state)

``grads_T`` is a pytree of the shared parameters (or of the shared representation,
with ``rep_grad``) whose leaves carry a leading T axis; ``direction`` has the same
structure without it. Gram matrices are summed leaf by leaf: parameters are never
ravelled into one ``[T, D]`` matrix. All history a method needs lives in its state.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from metalm import types

BalancerState = Any


class LossBalancer(NamedTuple):
  """Weights the task losses; the step needs one backward pass of ``weights_T @ losses_T``."""

  init: Callable[[int], BalancerState]
  update: Callable[..., tuple[jax.Array, BalancerState]]


class GradBalancer(NamedTuple):
  """Combines per-task gradients of the shared parameters into one update direction."""

  init: Callable[[int], BalancerState]
  update: Callable[..., tuple[types.Params, BalancerState]]


Balancer = LossBalancer | GradBalancer

# Top-level key of a multitask model's params that holds the task-specific parameters,
# as ``params[TASK_KEY][task_name]``; every other top-level entry is shared.
TASK_KEY = "task"


class MultiTaskModel(NamedTuple):
  """A multitask network as pure functions, split at the shared representation.

  Attributes:
    init: ``init(key) -> (params, state)``; ``params[TASK_KEY]`` maps each task name to
      its own parameters (heads, gates, towers); all other entries are shared.
    encode: ``encode(params, state, x, *, train, key=None) -> (rep, state)``: the shared
      computation (reads only shared parameters).
    decode: ``decode(params, state, rep, *, train, key=None) -> (outputs, state)`` with
      ``outputs`` a dict keyed by task name.
    tasks: the task names, in the order of the task axis T.
  """

  init: Callable[[types.PRNGKey], tuple[types.Params, types.ModelState]]
  encode: Callable[..., tuple[Any, types.ModelState]]
  decode: Callable[..., tuple[dict[str, jax.Array], types.ModelState]]
  tasks: tuple[str, ...]


def split_params(params: types.Params) -> tuple[types.Params, types.Params]:
  """``(shared, task_specific)`` by the ``TASK_KEY`` convention."""
  shared = {k: v for k, v in params.items() if k != TASK_KEY}
  return shared, params.get(TASK_KEY, {})


def merge_params(shared: types.Params, task_specific: types.Params) -> types.Params:
  return {**shared, TASK_KEY: task_specific} if task_specific else dict(shared)


def gram(grads_T: types.Params, other_T: types.Params | None = None) -> jax.Array:
  """``G_TxT[s, t] = <g_s, h_t>`` summed leaf by leaf (``h = g`` when ``other_T`` is None)."""
  other_T = grads_T if other_T is None else other_T

  def leaf_gram(g, h):
    g = g.reshape(g.shape[0], -1)
    h = h.reshape(h.shape[0], -1)
    return g @ h.T

  leaves = jax.tree.leaves(jax.tree.map(leaf_gram, grads_T, other_T))
  return sum(leaves[1:], leaves[0])


def combine(weights_T: jax.Array, grads_T: types.Params) -> types.Params:
  """``sum_t weights_T[t] * g_t``, leaf by leaf."""
  return jax.tree.map(lambda g: jnp.tensordot(weights_T.astype(g.dtype), g, axes=1), grads_T)


def task_dot(vectors_T: types.Params, direction: types.Params) -> jax.Array:
  """``[<g_t, d>]_T`` for a per-task pytree and a single pytree."""
  dots = jax.tree.map(
      lambda g, d: g.reshape(g.shape[0], -1) @ d.reshape(-1), vectors_T, direction)
  leaves = jax.tree.leaves(dots)
  return sum(leaves[1:], leaves[0])


def per_task_grads(losses_fn: Callable, params: types.Params, *args, has_aux: bool = False):
  """Per-task gradients by ``vmap`` over the VJP of a vector of task losses.

  One forward pass, then T backward passes batched by ``vmap`` (no Python loop).

  Args:
    losses_fn: ``losses_fn(params, *args) -> losses_T`` (or ``(losses_T, aux)``).
    params: the parameters to differentiate (the shared ones, or the representation).
    *args: further arguments to ``losses_fn``.
    has_aux: whether ``losses_fn`` returns auxiliary data.

  Returns:
    ``(losses_T, grads_T, vjp_fn[, aux])``: ``grads_T`` has a leading task axis;
    ``vjp_fn(cotangent_T)`` maps a weighting of the losses to a gradient.
  """
  out = jax.vjp(lambda p: losses_fn(p, *args), params, has_aux=has_aux)
  losses_T, vjp_fn = out[0], out[1]
  num_tasks = losses_T.shape[0]
  eye_TxT = jnp.eye(num_tasks, dtype=losses_T.dtype)
  (grads_T,) = jax.vmap(vjp_fn)(eye_TxT)
  if has_aux:
    return losses_T, grads_T, vjp_fn, out[2]
  return losses_T, grads_T, vjp_fn
