"""Per-target mean absolute error of multi-target regression (QM9's 11 tasks).

Models train on standardized targets; errors are reported in the targets' own units
(``scale`` = the training std, times a unit factor such as eV -> meV), as Nash-MTL's
QM9 evaluation does: the sum of ``|pred - target| * scale`` over a split, divided by its
number of examples. Everything is jnp and jit-compatible.
Reference: Navon et al. 2022, "Multi-Task Learning as a Bargaining Game", arXiv:2202.01017.
"""

import jax
import jax.numpy as jnp


def absolute_error_sums(pred_BxT: jax.Array, target_BxT: jax.Array,
                        mask_B: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """``(sum over examples of |pred - target| [T], number of examples)``; add over batches.

  ``mask_B`` drops padded examples (False) from both.
  """
  error = jnp.abs(pred_BxT - target_BxT)
  if mask_B is None:
    return error.sum(axis=0), jnp.asarray(error.shape[0], jnp.int32)
  return jnp.where(mask_B[:, None], error, 0.0).sum(axis=0), mask_B.sum()


def per_target_mae(pred_BxT: jax.Array, target_BxT: jax.Array, *,
                   scale_T: jax.Array | None = None,
                   mask_B: jax.Array | None = None) -> jax.Array:
  """Mean absolute error of each target ``[T]``, times ``scale_T`` (e.g. the std)."""
  sums, count = absolute_error_sums(pred_BxT, target_BxT, mask_B)
  mae = sums / count.astype(sums.dtype)
  return mae if scale_T is None else mae * scale_T
