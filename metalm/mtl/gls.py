"""Geometric loss strategy (GLS): the geometric mean of the task losses."""

import jax
import jax.numpy as jnp

from metalm.mtl import base


def gls() -> base.LossBalancer:
  """Weights ``(prod_s L_s)^(1/T) / (T L_t)``: the gradient of the geometric mean.

  Chennupati et al. 2019, MultiNet++, arXiv 1904.08492.
  """

  def update(losses_T, state, *, key=None):
    del key
    losses_T = jax.lax.stop_gradient(losses_T)
    num_tasks = losses_T.shape[0]
    geometric_mean = jnp.exp(jnp.mean(jnp.log(losses_T)))
    return geometric_mean / (num_tasks * losses_T), state

  return base.LossBalancer(lambda num_tasks: (), update)
