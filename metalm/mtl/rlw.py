"""Random loss weighting (RLW)."""

import jax

from metalm.mtl import base


def rlw() -> base.LossBalancer:
  """Weights ``softmax(z)`` with ``z ~ N(0, I)`` drawn afresh from ``key`` every update.

  Lin et al. 2022, Reasonable Effectiveness of Random Weighting, arXiv 2111.10603.
  """

  def update(losses_T, state, *, key):
    z_T = jax.random.normal(key, losses_T.shape, losses_T.dtype)
    return jax.nn.softmax(z_T), state

  return base.LossBalancer(lambda num_tasks: (), update)
