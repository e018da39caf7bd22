"""FairGrad: alpha-fair allocation of the update among the tasks."""

import jax
import jax.numpy as jnp

from metalm.mtl import base, options

_BACKTRACKS = 24


def fair_weights(gram_TxT, alpha: float = 1.0, *, max_iters: int = 60):
  """The ``w > 0`` with ``(G w)_t = w_t^(-1/alpha)`` for every task.

  These are the stationarity conditions of the strictly convex
  ``phi(w) = w^T G w / 2 + sum_t h(w_t)`` with ``h'(w) = -w^(-1/alpha)`` (``-log w`` at
  ``alpha = 1``), minimized by Newton steps with an Armijo backtracking line search that
  keeps ``w`` positive. ``G`` is first scaled to unit largest diagonal (the solution then
  scales back by ``s^(-alpha / (alpha + 1))``). Tasks with a zero gradient get weight 0.

  Args:
    gram_TxT: the Gram matrix of the task gradients.
    alpha: fairness: 1 is proportional fairness (Nash-MTL), larger tends to max-min.
    max_iters: cap on Newton steps.
  """
  num_tasks = gram_TxT.shape[0]
  dtype = gram_TxT.dtype
  eps = jnp.finfo(dtype).eps
  p = 1.0 / alpha
  diag_T = jnp.diag(gram_TxT)
  scale = jnp.max(diag_T)
  active_T = diag_T > eps**2 * scale
  scale = jnp.where(scale > 0, scale, 1.0)
  eye_TxT = jnp.eye(num_tasks, dtype=dtype)
  g_TxT = jnp.where(active_T[:, None] & active_T[None, :], gram_TxT / scale, eye_TxT)

  def phi(w_T):
    barrier = -jnp.log(w_T) if alpha == 1 else -(w_T ** (1.0 - p)) / (1.0 - p)
    return 0.5 * w_T @ g_TxT @ w_T + jnp.sum(barrier)

  def step(carry):
    w_T, _, it = carry
    grad_T = g_TxT @ w_T - w_T ** (-p)
    hess_TxT = g_TxT + jnp.diag(p * w_T ** (-p - 1.0))
    dw_T = -jnp.linalg.solve(hess_TxT, grad_T)
    decrement = -grad_T @ dw_T
    # At most a 3/4 decrease of any weight per step, then Armijo backtracking.
    t_max = 0.75 / jnp.maximum(jnp.max(-dw_T / w_T), 0.75)
    ts_K = t_max * 0.5 ** jnp.arange(_BACKTRACKS, dtype=dtype)
    cand_KxT = w_T[None, :] + ts_K[:, None] * dw_T[None, :]
    phi0 = phi(w_T)
    slack = 16 * num_tasks * eps * (1.0 + jnp.abs(phi0))
    ok_K = jax.vmap(phi)(cand_KxT) <= phi0 - 0.25 * ts_K * decrement + slack
    w_T = cand_KxT[jnp.where(jnp.any(ok_K), jnp.argmax(ok_K), _BACKTRACKS - 1)]
    return w_T, decrement <= 1e3 * num_tasks * eps, it + 1

  def cond(carry):
    return ~carry[1] & (carry[2] < max_iters)

  w0_T = jnp.diag(g_TxT) ** (-alpha / (alpha + 1.0))  # Exact for orthogonal gradients.
  w_T, _, _ = jax.lax.while_loop(cond, step, (w0_T, jnp.array(False), jnp.array(0)))
  return jnp.where(active_T, w_T * scale ** (-alpha / (alpha + 1.0)), 0.0)


def fairgrad(alpha: float = 1.0, *, max_iters: int = 60) -> base.GradBalancer:
  """FairGrad: the update ``d = sum_t w_t g_t`` maximizing ``sum_t U_alpha(<g_t, d>)``.

  With the alpha-fair utility ``U_alpha(x) = x^(1 - alpha) / (1 - alpha)`` (``log x`` at
  ``alpha = 1``, which is Nash-MTL without its normalization) the optimal weights solve
  ``G w = w^(-1/alpha)`` (``fair_weights``, Newton in JAX, where the official code calls
  ``scipy.optimize.least_squares``). The official ``max_norm`` clipping of the update is
  ``optax.clip_by_global_norm`` in the optimizer chain.

  Args:
    alpha: the fairness parameter (> 0).
    max_iters: cap on Newton steps.

  Returns:
    A ``base.GradBalancer`` built by ``options.weighted`` (state ``weights_T``: the ``w``).

  Ban & Ji 2024, Fair Resource Allocation in Multi-Task Learning, arXiv 2402.15638.
  """
  if alpha <= 0:
    raise ValueError(f"alpha must be positive, got {alpha}.")

  def weights_fn(gram_TxT, state, *, losses_T, key):
    del losses_T, key
    return fair_weights(gram_TxT, alpha, max_iters=max_iters), state

  return options.weighted(weights_fn)
