"""IMTL-G: the combination of task gradients with equal projections on every task."""

import jax.numpy as jnp

from metalm.mtl import base, options


def impartial_weights(gram_TxT):
  """Weights ``a`` (summing to 1) with ``<sum_t a_t g_t, u_s>`` equal for all unit ``u_s``.

  The paper's closed form: with ``D`` the rows ``g_1 - g_t`` and ``U`` the rows
  ``u_1 - u_t`` (``t = 2..T``), ``a_{2:T} = g_1 U^T (D U^T)^{-1}`` and
  ``a_1 = 1 - sum a_{2:T}``, all read off the Gram matrix: ``<g_s, u_t> = G[s, t] / ||g_t||``.
  """
  if gram_TxT.shape[0] == 1:
    return jnp.ones((1,), gram_TxT.dtype)
  norms_T = jnp.sqrt(jnp.maximum(jnp.diag(gram_TxT), 0.0))
  proj_TxT = gram_TxT / jnp.where(norms_T > 0, norms_T, 1.0)[None, :]  # <g_s, u_t>
  g1u_R = proj_TxT[0, 0] - proj_TxT[0, 1:]  # <g_1, u_1 - u_t>
  du_RxR = g1u_R[None, :] - proj_TxT[1:, :1] + proj_TxT[1:, 1:]  # <g_1 - g_s, u_1 - u_t>
  rest_R = jnp.linalg.solve(du_RxR.T, g1u_R)
  # Dependent gradients (e.g. a duplicated or zero task): the least-norm solution instead.
  rest_R = jnp.where(jnp.all(jnp.isfinite(rest_R)), rest_R, jnp.linalg.pinv(du_RxR.T) @ g1u_R)
  return jnp.concatenate([1.0 - jnp.sum(rest_R, keepdims=True), rest_R])


def imtl() -> base.GradBalancer:
  """Impartial multi-task learning, gradient part (IMTL-G).

  The direction ``sum_t a_t g_t`` with ``sum_t a_t = 1`` has the same projection on every
  task's unit gradient, so no task is favoured. The paper computes the gradients at the
  shared representation: use the trainer's ``rep_grad=True``. The loss part (IMTL-L,
  learned loss scales for the task-specific parameters) is not included.

  Returns:
    A ``base.GradBalancer`` built by ``options.weighted`` (state ``weights_T``: the ``a``).

  Liu et al. 2021, Towards Impartial Multi-task Learning, ICLR 2021,
  openreview.net/forum?id=IMPnRXEWpvr.
  """

  def weights_fn(gram_TxT, state, *, losses_T, key):
    del losses_T, key
    return impartial_weights(gram_TxT), state

  return options.weighted(weights_fn)
