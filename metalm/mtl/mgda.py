"""MGDA: the min-norm point of the convex hull of the task gradients."""

import jax.numpy as jnp

from metalm.mtl import base, options, qp

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def min_norm_weights(gram_TxT, *, max_iters: int | None = None):
  """``argmin_{w in simplex} w^T G w``: the weights of the min-norm point of the hull.

  Solved exactly by an active-set method (``qp.solve``) rather than Frank-Wolfe.
  """
  scale = jnp.trace(gram_TxT) / gram_TxT.shape[0]
  scale = jnp.where(scale > 0, scale, 1.0)  # The weights ignore the Gram matrix's scale.
  weights_T, _ = qp.solve(gram_TxT / scale, simplex=True, max_iters=max_iters)
  return weights_T


def normalizers(gram_TxT, losses_T, normalization: str):
  """The per-task divisors of the gradients in Sener & Koltun's code (``gradient_normalizers``)."""
  norms_T = jnp.sqrt(jnp.maximum(jnp.diag(gram_TxT), 0.0))
  losses_T = losses_T.astype(gram_TxT.dtype)
  return {"none": jnp.ones_like(norms_T), "l2": norms_T, "loss": losses_T,
          "loss+": losses_T * norms_T}[normalization]


def mgda(normalization: str = "none", *, max_iters: int | None = None) -> base.GradBalancer:
  """Multiple-gradient descent: the direction of min norm in the hull of the task gradients.

  The weights ``w`` solve ``min_{w in simplex} ||sum_t w_t g_t / n_t||^2`` with the
  normalizers ``n_t`` of the authors' code, and, as there, multiply the raw gradients
  (the direction is ``sum_t w_t g_t``). MGDA-UB (the paper's upper bound) is this method
  with the trainer's ``rep_grad=True``: gradients at the shared representation.

  Args:
    normalization: ``n_t``: ``"none"`` (1), ``"l2"`` (``||g_t||``), ``"loss"`` (``L_t``) or
      ``"loss+"`` (``L_t ||g_t||``).
    max_iters: cap on active-set steps of the QP solver (``5 T + 10`` if None).

  Returns:
    A ``base.GradBalancer`` built by ``options.weighted`` (state ``weights_T``: the ``w``).

  Sener & Koltun 2018, Multi-Task Learning as Multi-Objective Optimization, arXiv 1810.04650.
  """
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")

  def weights_fn(gram_TxT, state, *, losses_T, key):
    del key
    norm_T = normalizers(gram_TxT, losses_T, normalization)
    norm_T = jnp.where(norm_T > 0, norm_T, 1.0)
    return min_norm_weights(gram_TxT / (norm_T[:, None] * norm_T[None, :]),
                            max_iters=max_iters), state

  return options.weighted(weights_fn)
