"""Scale-invariant loss (SI): the sum of log losses."""

import jax

from metalm.mtl import base


def scale_invariant() -> base.LossBalancer:
  """Weights ``1 / L_t``: the gradient of ``sum_t log L_t``, invariant to loss scales.

  Navon et al. 2022 (the SI baseline of Nash-MTL), arXiv 2202.01017.
  """

  def update(losses_T, state, *, key=None):
    del key
    return 1.0 / jax.lax.stop_gradient(losses_T), state

  return base.LossBalancer(lambda num_tasks: (), update)
