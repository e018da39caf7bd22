"""Dual-balancing multitask learning (DB-MTL)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metalm import types
from metalm.mtl import base

_EPS = 1e-8


class DBMTLState(NamedTuple):
  count: jax.Array  # Updates so far.
  # EMA of the per-task gradients of log L_t; None until the first update when no
  # ``grads_like`` was given (the first jitted step then traces twice).
  ema_T: Any


def db_mtl(
    beta: float = 0.9, beta_sigma: float = 0.0, grads_like: types.Params | None = None
) -> base.GradBalancer:
  """Direction ``sum_t (max_s |m_s| / |m_t|) m_t`` with ``m_t`` an EMA of ``grad log L_t``.

  Loss-scale balancing: the task gradients of ``log L_t`` are ``g_t / L_t``. Gradient-
  magnitude balancing: every EMA ``m_t = (1 - b) (g_t / L_t) + b m_t`` with
  ``b = beta / step^beta_sigma`` is rescaled to the largest norm. The EMA is over the
  shared parameters' gradients; with ``rep_grad`` the representation changes with every
  batch, so use DB-MTL without it (as LibMTL requires).

  Lin et al. 2023, Dual-Balancing for Multi-Task Learning, arXiv 2308.12029.

  Args:
    beta: the EMA coefficient.
    beta_sigma: its decay exponent over steps.
    grads_like: the shared parameters (or their shapes), without task axis; sizes the
      EMA at ``init`` so the state keeps one structure from the start.
  """

  def init(num_tasks):
    ema_T = None
    if grads_like is not None:
      ema_T = jax.tree.map(lambda p: jnp.zeros((num_tasks, *p.shape), p.dtype), grads_like)
    return DBMTLState(jnp.zeros((), jnp.int32), ema_T)

  def update(grads_T, state, *, losses_T, key=None):
    del key
    losses_T = jax.lax.stop_gradient(losses_T)
    count = state.count + 1
    b = beta / count.astype(jnp.float32) ** beta_sigma
    log_grads_T = jax.tree.map(
        lambda g: g / (losses_T + _EPS).astype(g.dtype).reshape((-1,) + (1,) * (g.ndim - 1)),
        grads_T)
    ema_T = state.ema_T
    if ema_T is None:
      ema_T = optax.tree.zeros_like(log_grads_T)
    ema_T = jax.tree.map(lambda g, m: g + b.astype(g.dtype) * (m - g), log_grads_T, ema_T)
    norms_T = jnp.sqrt(jnp.diagonal(base.gram(ema_T)))
    scale_T = jnp.max(norms_T) / (norms_T + _EPS)
    return base.combine(scale_T, ema_T), DBMTLState(count, ema_T)

  return base.GradBalancer(init, update)
