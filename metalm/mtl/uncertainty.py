"""Uncertainty weighting (UW): learnable homoscedastic log-variances."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metalm.mtl import base


class UncertaintyState(NamedTuple):
  log_vars_T: jax.Array  # s_t = log sigma_t^2.
  opt_state: Any  # State of the balancer's own optimizer over ``log_vars_T``.


def uncertainty(tx: optax.GradientTransformation | None = None) -> base.LossBalancer:
  """Weights ``exp(-s_t)`` of the objective ``sum_t exp(-s_t) L_t + s_t``.

  The log-variances ``s_t`` are the balancer's own parameters. The model sees only
  ``exp(-s_t) L_t`` (the regularizer ``s_t`` has no model gradient), so ``s`` is updated
  inside the balancer by ``tx`` with the closed-form gradient ``1 - exp(-s_t) L_t``, taken
  at the weights used in this step (as a joint gradient step on model and ``s`` would).
  At the fixed point ``sigma_t^2 = exp(s_t) = L_t``.

  Kendall et al. 2018, Multi-Task Learning Using Uncertainty to Weigh Losses, arXiv 1705.07115.

  Args:
    tx: the optimizer of the log-variances; defaults to ``optax.adam(1e-3)``. Pass the
      model's optimizer to train ``s`` as one parameter group with the model.
  """
  tx = optax.adam(1e-3) if tx is None else tx

  def init(num_tasks):
    log_vars_T = jnp.zeros((num_tasks,), jnp.float32)
    return UncertaintyState(log_vars_T, tx.init(log_vars_T))

  def update(losses_T, state, *, key=None):
    del key
    weights_T = jnp.exp(-state.log_vars_T)
    losses_T = jax.lax.stop_gradient(losses_T).astype(jnp.float32)
    grad_T = 1.0 - weights_T * losses_T
    updates_T, opt_state = tx.update(grad_T, state.opt_state, state.log_vars_T)
    log_vars_T = optax.apply_updates(state.log_vars_T, updates_T)
    return weights_T, UncertaintyState(log_vars_T, opt_state)

  return base.LossBalancer(init, update)
