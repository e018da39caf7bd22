"""UPGrad: average of the task gradients, each projected onto the dual cone of all of them."""

import jax
import jax.numpy as jnp

from metalm.mtl import base, options, qp


def projection_weights(gram_TxT, *, max_iters: int | None = None):
  """``V_TxT`` with row ``i`` the weights of the projection of ``g_i`` on the dual cone.

  The projection of ``J^T u`` on ``{x : J x >= 0}`` is ``J^T v`` with
  ``v = argmin_{v >= u} v^T G v`` (Quinton & Rey 2024, Proposition 1); here ``u = e_i``
  and ``v = e_i + z`` with ``z >= 0`` from ``qp.solve`` (non-negative QP), batched over i.
  """
  num_tasks = gram_TxT.shape[0]
  z_TxT, _ = jax.vmap(lambda c_T: qp.solve(gram_TxT, c_T, max_iters=max_iters))(gram_TxT)
  return jnp.eye(num_tasks, dtype=gram_TxT.dtype) + z_TxT


def upgrad(pref_T=None, *, norm_eps: float = 1e-4, reg_eps: float = 1e-4,
           max_iters: int | None = None) -> base.GradBalancer:
  """Unconflicting projection of gradients (TorchJD's UPGrad).

  Each task gradient is projected onto the dual cone of the task gradients (the directions
  that conflict with none), and the projections are averaged (or weighted by ``pref_T``).
  The result has a non-negative inner product with every task gradient and is the mean
  gradient when no two gradients conflict. As TorchJD, the Gram matrix is divided by its
  trace (zeroed when the trace is below ``norm_eps``) and regularized by ``reg_eps I``.

  Args:
    pref_T: preference weights of the projections (``1/T`` each if None).
    norm_eps: trace below which the Gram matrix counts as zero.
    reg_eps: ridge added to the normalized Gram matrix (0 for exact projections).
    max_iters: cap on active-set steps of each QP (``5 T + 10`` if None).

  Returns:
    A ``base.GradBalancer`` built by ``options.weighted`` (state ``weights_T``:
    ``sum_i pref_i v_i``).

  Quinton & Rey 2024, Jacobian Descent for Multi-Objective Optimization, arXiv 2406.16232.
  """

  def weights_fn(gram_TxT, state, *, losses_T, key):
    del losses_T, key
    num_tasks = gram_TxT.shape[0]
    dtype = gram_TxT.dtype
    trace = jnp.trace(gram_TxT)
    gram_TxT = jnp.where(trace < norm_eps, 0.0, gram_TxT / jnp.where(trace > 0, trace, 1.0))
    gram_TxT = gram_TxT + reg_eps * jnp.eye(num_tasks, dtype=dtype)
    prefs_T = (jnp.full((num_tasks,), 1.0 / num_tasks, dtype) if pref_T is None
               else jnp.asarray(pref_T, dtype))
    return prefs_T @ projection_weights(gram_TxT, max_iters=max_iters), state

  return options.weighted(weights_fn)
