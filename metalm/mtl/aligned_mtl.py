"""Aligned-MTL: align the task gradients' principal components to one singular value."""

import jax.numpy as jnp

from metalm.mtl import base, options

SCALE_MODES = ("min", "median", "rmse")


def alignment(gram_TxT, scale_mode: str = "min"):
  """``W_TxT`` such that the aligned gradients ``g'_t = sum_s W[s, t] g_s`` are orthogonal
  with the same norm ``sigma``.

  With ``G = V diag(lambda) V^T``, ``W = sigma V diag(lambda^(-1/2)) V^T`` over the
  eigenvalues above the numerical rank tolerance (the others are dropped), so
  ``W^T G W = sigma^2 P`` with ``P`` the projector on the range of ``G``; ``sigma^2`` is
  the smallest kept eigenvalue (``"min"``), their median or their mean (``"rmse"``).
  """
  num_tasks = gram_TxT.shape[0]
  lam_T, v_TxT = jnp.linalg.eigh(gram_TxT)
  keep_T = lam_T > jnp.max(lam_T) * num_tasks * jnp.finfo(gram_TxT.dtype).eps
  kept_T = jnp.where(keep_T, lam_T, jnp.nan)
  sigma_sq = {"min": jnp.nanmin, "median": jnp.nanmedian, "rmse": jnp.nanmean}[scale_mode](
      kept_T)
  inv_sqrt_T = jnp.where(keep_T, jnp.sqrt(sigma_sq / jnp.where(keep_T, lam_T, 1.0)), 0.0)
  return (v_TxT * inv_sqrt_T[None, :]) @ v_TxT.T


def aligned_mtl(scale_mode: str = "min") -> base.GradBalancer:
  """Independent component alignment: the sum of the aligned task gradients.

  The task gradients are replaced by the closest (Procrustes) set of orthogonal vectors
  of equal norm, the condition number of the gradient matrix becomes 1, and the direction
  is their sum, ``sum_t (W 1)_t g_t`` (``alignment``). Aligned-MTL-UB (the paper's upper
  bound) is this method with the trainer's ``rep_grad=True``.

  Args:
    scale_mode: the common singular value: the smallest (``"min"``, the paper's), the
      median or the root-mean-square of the task gradients' singular values.

  Returns:
    A ``base.GradBalancer`` built by ``options.weighted`` (state ``weights_T``: ``W 1``).

  Senushkin et al. 2023, Independent Component Alignment for Multi-Task Learning,
  arXiv 2305.19000.
  """
  if scale_mode not in SCALE_MODES:
    raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}.")

  def weights_fn(gram_TxT, state, *, losses_T, key):
    del losses_T, key
    return alignment(gram_TxT, scale_mode).sum(axis=1), state

  return options.weighted(weights_fn)
