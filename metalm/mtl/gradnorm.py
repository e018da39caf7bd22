"""GradNorm: learnable task weights that equalize the weighted gradient norms."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metalm.mtl import base, options


class GradNormState(NamedTuple):
  weights_T: jax.Array  # The learnable weights, renormalized to sum T.
  initial_losses_T: jax.Array  # L_t(0), recorded at the first update.
  started: jax.Array
  opt_state: Any


def gradnorm(
    alpha: float = 1.5, tx: optax.GradientTransformation | None = None
) -> base.GradBalancer:
  """Direction ``sum_t w_t g_t``; ``w`` descends ``sum_t |w_t |g_t| - G r_t^alpha|``.

  ``|g_t|`` is the norm of task t's gradient of the shared parameters (or of the
  representation with ``rep_grad``), ``G`` the mean of ``w_t |g_t|`` and
  ``r_t = (L_t / L_t(0)) / mean_s (L_s / L_s(0))`` the relative inverse training rate;
  ``G r_t^alpha`` is held constant, as in the paper. After each step of ``tx`` the weights
  are clipped to be positive and renormalized to sum T. The direction uses the weights
  from before the update.

  Chen et al. 2018, GradNorm, arXiv 1711.02257.

  Args:
    alpha: the strength of the restoring force towards a common training rate.
    tx: the optimizer of the weights; defaults to ``optax.adam(0.025)``.
  """
  tx = optax.adam(0.025) if tx is None else tx

  def init(num_tasks):
    weights_T = jnp.ones((num_tasks,), jnp.float32)
    return GradNormState(weights_T, weights_T, jnp.array(False), tx.init(weights_T))

  def weights_fn(gram_TxT, state, *, losses_T, key=None):
    del key
    num_tasks = losses_T.shape[0]
    losses_T = jax.lax.stop_gradient(losses_T).astype(jnp.float32)
    initial_T = jnp.where(state.started, state.initial_losses_T, losses_T)
    norms_T = jnp.sqrt(jnp.maximum(jnp.diagonal(gram_TxT).astype(jnp.float32), 0.0))
    rates_T = losses_T / initial_T
    target_T = jnp.mean(state.weights_T * norms_T) * (rates_T / jnp.mean(rates_T)) ** alpha
    grad_T = norms_T * jnp.sign(state.weights_T * norms_T - target_T)
    updates_T, opt_state = tx.update(grad_T, state.opt_state, state.weights_T)
    new_T = jnp.maximum(optax.apply_updates(state.weights_T, updates_T), 1e-6)
    new_T = num_tasks * new_T / jnp.sum(new_T)
    return state.weights_T, GradNormState(new_T, initial_T, jnp.array(True), opt_state)

  return options.weighted(weights_fn, init)
