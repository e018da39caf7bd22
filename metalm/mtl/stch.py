"""Smooth Tchebycheff scalarization (STCH) of the task losses."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from metalm.mtl import base


class STCHState(NamedTuple):
  count: jax.Array  # Updates so far.
  warmup_sum_T: jax.Array  # Sum of the losses seen during warm-up.
  nadir_T: jax.Array  # The nadir point that normalizes the losses.


def stch(
    mu: float = 1.0,
    *,
    preference=1.0,
    ideal=0.0,
    nadir=None,
    warmup_steps: int = 0,
    log_losses: bool = True,
) -> base.LossBalancer:
  """The gradient weights of ``T mu log sum_t exp(lambda_t (f_t - z_t) / mu)``.

  ``f_t = log(L_t / n_t)`` (or ``L_t / n_t`` with ``log_losses=False``) normalizes each
  loss by the nadir point ``n``, ``z`` is the ideal point of the normalized objectives
  and ``lambda`` the preference. The weights are
  ``T softmax(lambda (f - z) / mu)_t lambda_t / L_t`` (divided by ``n_t`` instead of
  ``L_t`` without logs). As ``mu -> 0`` this tends to the Tchebycheff (max) scalarization.
  During the first ``warmup_steps`` updates the weights are ``1 / L_t`` (the sum of log
  losses) and the nadir point becomes the mean loss over them, as in the official
  multitask code; without warm-up or a given ``nadir`` it is 1.

  Lin et al. 2024, Smooth Tchebycheff Scalarization for Multi-Objective Optimization,
  arXiv 2402.19078.
  """

  preference = jnp.asarray(preference, jnp.float32)
  ideal = jnp.asarray(ideal, jnp.float32)

  def init(num_tasks):
    ones_T = jnp.ones((num_tasks,), jnp.float32)
    nadir_T = ones_T if nadir is None else jnp.broadcast_to(jnp.asarray(nadir, jnp.float32),
                                                            ones_T.shape)
    return STCHState(jnp.zeros((), jnp.int32), jnp.zeros_like(ones_T), nadir_T)

  def update(losses_T, state, *, key=None):
    del key
    num_tasks = losses_T.shape[0]
    losses_T = jax.lax.stop_gradient(losses_T).astype(jnp.float32)
    f_T = losses_T / state.nadir_T
    df_T = 1.0 / state.nadir_T
    if log_losses:
      f_T, df_T = jnp.log(f_T), 1.0 / losses_T
    softmax_T = jax.nn.softmax(preference * (f_T - ideal) / mu)
    weights_T = num_tasks * softmax_T * preference * df_T
    warm = state.count < warmup_steps
    weights_T = jnp.where(warm, 1.0 / losses_T, weights_T)
    warmup_sum_T = jnp.where(warm, state.warmup_sum_T + losses_T, state.warmup_sum_T)
    nadir_T = state.nadir_T
    if warmup_steps and nadir is None:
      nadir_T = jnp.where(state.count + 1 == warmup_steps, warmup_sum_T / warmup_steps, nadir_T)
    return weights_T, STCHState(state.count + 1, warmup_sum_T, nadir_T)

  return base.LossBalancer(init, update)
