"""PCGrad: project each task gradient off the gradients it conflicts with."""

import jax
import jax.numpy as jnp

from metalm.mtl import base, options


def projection_coefficients(gram_TxT, orders_TxT):
  """``C_TxT`` with the projected gradients ``g_i^PC = sum_k C[i, k] g_k``.

  Row ``i`` visits the other tasks ``j`` in the order ``orders_TxT[i]`` and, when
  ``<g_i^PC, g_j> < 0``, subtracts ``<g_i^PC, g_j> / ||g_j||^2 g_j``. Every projected
  gradient is a combination of the raw ones, so all inner products come from ``G``.
  """
  num_tasks = gram_TxT.shape[0]
  eye_TxT = jnp.eye(num_tasks, dtype=gram_TxT.dtype)

  def row(i, order_T):
    def visit(coef_T, j):
      dot = coef_T @ gram_TxT[:, j]
      sq = gram_TxT[j, j]
      conflict = (j != i) & (dot < 0) & (sq > 0)
      step = jnp.where(conflict, dot / jnp.where(sq > 0, sq, 1.0), 0.0)
      return coef_T - step * eye_TxT[j], None

    coef_T, _ = jax.lax.scan(visit, eye_TxT[i], order_T)
    return coef_T

  return jax.vmap(row)(jnp.arange(num_tasks), orders_TxT)


def pcgrad(reduction: str = "sum") -> base.GradBalancer:
  """Projecting conflicting gradients, in a fresh random task order per task and step.

  The direction is ``sum_i g_i^PC`` (``"sum"``, as the paper) or its mean.

  Args:
    reduction: ``"sum"`` or ``"mean"`` of the projected gradients.

  Returns:
    A ``base.GradBalancer`` built by ``options.weighted`` (state ``weights_T``: the column
    sums of the projection coefficients).

  Yu et al. 2020, Gradient Surgery for Multi-Task Learning, arXiv 2001.06782.
  """
  if reduction not in ("sum", "mean"):
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}.")

  def weights_fn(gram_TxT, state, *, losses_T, key):
    del losses_T
    num_tasks = gram_TxT.shape[0]
    keys = jax.random.split(key, num_tasks)
    orders_TxT = jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(keys)
    weights_T = projection_coefficients(gram_TxT, orders_TxT).sum(axis=0)
    return (weights_T / num_tasks if reduction == "mean" else weights_T), state

  return options.weighted(weights_fn)
