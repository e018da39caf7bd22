"""Equal weighting (EW): the plain sum of the task losses."""

import jax.numpy as jnp

from metalm.mtl import base


def equal_weighting() -> base.LossBalancer:
  """Weights 1 for every task: the gradient of ``sum_t L_t``.

  Kurin et al. 2022, In Defense of the Unitary Scalarization, arXiv 2201.04122.
  """

  def update(losses_T, state, *, key=None):
    del key
    return jnp.ones_like(losses_T), state

  return base.LossBalancer(lambda num_tasks: (), update)
