"""GradDrop: keep, element by element, the gradient sign drawn by its sign purity."""

import jax
import jax.numpy as jnp

from metalm.mtl import base


def drop(grads_T, key, leak_T):
  """One GradDrop draw for one array ``[T, ...]``; returns the combined ``[...]``.

  The kept parts are weighted sums over tasks of the positive and negative parts, taken
  by ``base.combine`` as products with ``[T]`` vectors (XLA's CPU reduction over a
  leading axis is two orders of magnitude slower than the same sum as a product).
  """
  leak_T = leak_T.astype(grads_T.dtype)
  over_tasks = base.combine
  positive_T, negative_T = jnp.maximum(grads_T, 0.0), jnp.minimum(grads_T, 0.0)
  ones_T = jnp.ones_like(leak_T)
  positive, negative = over_tasks(ones_T, positive_T), over_tasks(ones_T, negative_T)
  purity = 0.5 * (1.0 + (positive + negative) / (positive - negative + 1e-8))
  u = jax.random.uniform(key, purity.shape, purity.dtype)
  kept_positive = over_tasks(1.0 - leak_T, positive_T)
  kept_negative = over_tasks(1.0 - leak_T, negative_T)
  return (over_tasks(leak_T, grads_T) + jnp.where(purity > u, kept_positive, 0.0)
          + jnp.where(purity < u, kept_negative, 0.0))


def graddrop(leak=0.0) -> base.GradBalancer:
  """Gradient sign dropout, leaf by leaf and element by element.

  Each element's sign purity ``P = (1 + sum_t g_t / sum_t |g_t|) / 2`` and one uniform
  draw ``U`` (shared by the tasks) keep the positive parts of the task gradients where
  ``P > U`` and the negative ones where ``P < U``; the direction is the sum of what is
  kept, plus ``leak_t`` of each dropped part. The paper applies it to gradients at the
  shared representation (the trainer's ``rep_grad=True``) and first sums
  ``sign(activation) * gradient`` over the batch; a balancer sees no activations, so here
  each element of ``grads_T`` has its own purity and draw.

  Args:
    leak: scalar or ``[T]``; the fraction of each task's gradient passed through undropped.

  Returns:
    A ``base.GradBalancer`` with empty state; its update needs ``key``.

  Chen et al. 2020, Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign
  Dropout, arXiv 2010.06808.
  """

  def update(grads_T, state, *, losses_T, key):
    leaves, treedef = jax.tree.flatten(grads_T)
    del losses_T
    leak_T = jnp.broadcast_to(jnp.asarray(leak), leaves[0].shape[:1])
    keys = jax.random.split(key, len(leaves))
    out = [drop(g, k, leak_T) for g, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(treedef, out), state

  return base.GradBalancer(lambda num_tasks: (), update)
