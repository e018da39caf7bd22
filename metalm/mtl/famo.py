"""Fast adaptive multitask optimization (FAMO)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metalm.mtl import base

_EPS = 1e-8


class FAMOState(NamedTuple):
  logits_T: jax.Array  # w: the task weights are ``softmax(w)``.
  opt_state: Any  # Adam with L2 decay over ``logits_T``.
  prev_losses_T: jax.Array  # The losses of the last update.
  started: jax.Array  # Whether ``prev_losses_T`` holds a real measurement.


def famo(
    learning_rate: float = 0.025, weight_decay: float = 0.01, min_losses=0.0
) -> base.LossBalancer:
  """Weights ``z_t / (c (L_t - m_t))`` with ``z = softmax(w)``, ``c = sum_s z_s / (L_s - m_s)``.

  These are the gradient weights of ``sum_t (z_t / c) log(L_t - m_t)``. The logits ``w``
  descend ``J_softmax(w)^T delta`` (Adam with L2 decay, as the official code) where
  ``delta_t = log(L_t^before - m_t) - log(L_t^after - m_t)`` is the log-loss decrease of
  the last step. The step feeds the losses after a step back through the next
  ``update``: its ``losses_T`` are the "after" losses of the previous update (measured
  on the next batch, which saves the official code's extra forward pass) and the
  "before" losses of this one; the state keeps them in ``prev_losses_T``.

  Liu et al. 2023, FAMO: Fast Adaptive Multitask Optimization, arXiv 2306.03792.

  Args:
    learning_rate: Adam's learning rate on the logits.
    weight_decay: L2 coefficient gamma added to the logits' gradient.
    min_losses: ``m_t``, a lower bound of each loss (0 for non-negative losses).
  """
  tx = optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))

  def init(num_tasks):
    logits_T = jnp.zeros((num_tasks,), jnp.float32)
    return FAMOState(logits_T, tx.init(logits_T), jnp.ones_like(logits_T), jnp.array(False))

  def update(losses_T, state, *, key=None):
    del key
    losses_T = jax.lax.stop_gradient(losses_T).astype(jnp.float32)
    delta_T = (jnp.log(state.prev_losses_T - min_losses + _EPS)
               - jnp.log(losses_T - min_losses + _EPS))
    _, softmax_vjp = jax.vjp(jax.nn.softmax, state.logits_T)
    (grad_T,) = softmax_vjp(delta_T)
    updates_T, opt_state = tx.update(grad_T, state.opt_state, state.logits_T)
    stepped = (optax.apply_updates(state.logits_T, updates_T), opt_state)
    logits_T, opt_state = jax.tree.map(
        lambda a, b: jnp.where(state.started, a, b), stepped,
        (state.logits_T, state.opt_state))
    z_T = jax.nn.softmax(logits_T)
    ratio_T = z_T / (losses_T - min_losses + _EPS)
    weights_T = ratio_T / jnp.sum(ratio_T)
    return weights_T, FAMOState(logits_T, opt_state, losses_T, jnp.array(True))

  return base.LossBalancer(init, update)
