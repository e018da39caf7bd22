"""Small quadratic programs over the task axis, solved exactly in JAX.

MGDA, CAGrad and UPGrad reduce to convex QPs in T variables over the non-negative orthant
or the simplex. A primal active-set method solves them in finitely many steps (about T),
each a ``(T+1) x (T+1)`` linear solve, inside one ``lax.while_loop``: no cvxpy, no
solver tolerance that drifts with the problem's scale.
"""

import jax
import jax.numpy as jnp


def face_solve(q_TxT, c_T, free_T, *, simplex: bool):
  """Minimizer of ``x^T Q x / 2 + c^T x`` on the face ``x_i = 0`` for ``i`` not free.

  Args:
    q_TxT: symmetric positive semi-definite matrix.
    c_T: linear term.
    free_T: bool mask of the free variables.
    simplex: also constrain ``sum_i x_i = 1``.

  Returns:
    ``(x_T, nu)``: the face's minimizer and the multiplier of ``sum x = 1`` (0 without it),
    so that ``(Q x + c)_i = nu`` on free variables.
  """
  num = q_TxT.shape[0]
  eye_TxT = jnp.eye(num, dtype=q_TxT.dtype)
  # A tiny ridge keeps every face system non-singular (dependent gradients).
  ridge = 16 * jnp.finfo(q_TxT.dtype).eps * (jnp.trace(q_TxT) / num + 1e-30)
  both_TxT = free_T[:, None] & free_T[None, :]
  k_TxT = jnp.where(both_TxT, q_TxT + ridge * eye_TxT, eye_TxT)
  rhs_T = jnp.where(free_T, -c_T, 0.0)
  if not simplex:
    x_T = jnp.linalg.solve(k_TxT, rhs_T)
    return jnp.where(free_T, x_T, 0.0), jnp.zeros((), q_TxT.dtype)
  a_T = free_T.astype(q_TxT.dtype)
  k_top = jnp.concatenate([k_TxT, -a_T[:, None]], axis=1)
  k_bottom = jnp.concatenate([a_T, jnp.zeros((1,), q_TxT.dtype)])[None, :]
  sol = jnp.linalg.solve(jnp.concatenate([k_top, k_bottom], axis=0),
                         jnp.concatenate([rhs_T, jnp.ones((1,), q_TxT.dtype)]))
  return jnp.where(free_T, sol[:num], 0.0), sol[num]


def solve(q_TxT, c_T=None, *, simplex: bool = False, max_iters: int | None = None):
  """``argmin_x x^T Q x / 2 + c^T x`` s.t. ``x >= 0`` (and ``sum x = 1`` when ``simplex``).

  A primal active-set method (Nocedal & Wright 2006, Algorithm 16.3; Lawson & Hanson's NNLS
  when ``simplex`` is False): move to the minimizer of the current face, stopping at the
  first bound it crosses; at a face minimizer free the bound with the most negative
  multiplier, or stop when none is negative.

  Args:
    q_TxT: symmetric positive semi-definite matrix.
    c_T: linear term (zeros if None).
    simplex: constrain ``x`` to the probability simplex.
    max_iters: cap on active-set steps (``5 T + 10`` if None).

  Returns:
    ``(x_T, free_T)``: the solution and its support (the free variables).
  """
  num = q_TxT.shape[0]
  dtype = q_TxT.dtype
  c_T = jnp.zeros((num,), dtype) if c_T is None else c_T.astype(dtype)
  max_iters = 5 * num + 10 if max_iters is None else max_iters
  scale = jnp.max(jnp.abs(q_TxT)) + jnp.max(jnp.abs(c_T))
  tol = 64 * num * jnp.finfo(dtype).eps * scale
  if simplex:  # Start at the best vertex.
    free_T = jax.nn.one_hot(jnp.argmin(0.5 * jnp.diag(q_TxT) + c_T), num, dtype=bool)
    x_T = free_T.astype(dtype)
  else:  # Start at the origin.
    free_T = jnp.zeros((num,), bool)
    x_T = jnp.zeros((num,), dtype)

  def step(carry):
    x_T, free_T, _, it = carry
    y_T, nu = face_solve(q_TxT, c_T, free_T, simplex=simplex)
    blocking_T = free_T & (y_T <= 0)
    # Full step: y is the face minimizer; free the most violated bound, if any.
    mu_T = jnp.where(free_T, jnp.inf, q_TxT @ y_T + c_T - nu)
    enter = jnp.argmin(mu_T)
    optimal = mu_T[enter] >= -tol
    full_free_T = free_T.at[enter].set(~optimal | free_T[enter])
    # Partial step: stop at the first bound crossed and fix it.
    gap_T = jnp.where(blocking_T, x_T - y_T, 1.0)
    ratio_T = jnp.where(blocking_T, jnp.where(gap_T > 0, x_T / gap_T, 0.0), jnp.inf)
    leave = jnp.argmin(ratio_T)
    alpha = jnp.clip(ratio_T[leave], 0.0, 1.0)
    part_x_T = jnp.maximum(x_T + alpha * (y_T - x_T), 0.0).at[leave].set(0.0)
    part_free_T = free_T.at[leave].set(False)
    full = ~jnp.any(blocking_T)
    x_T = jnp.where(full, y_T, part_x_T)
    free_T = jnp.where(full, full_free_T, part_free_T)
    return x_T, free_T, full & optimal, it + 1

  def cond(carry):
    _, _, done, it = carry
    return ~done & (it < max_iters)

  x_T, free_T, _, _ = jax.lax.while_loop(
      cond, step, (x_T, free_T, jnp.array(False), jnp.array(0)))
  return x_T, free_T

