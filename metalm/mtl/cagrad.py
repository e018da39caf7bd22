"""CAGrad: the best worst-task improvement within a ball around the mean gradient."""

import jax
import jax.numpy as jnp

from metalm.mtl import base, options, qp


def dual_weights(gram_TxT, c: float, *, max_iters: int = 30):
  """``argmin_{w in simplex} <g_w, g_0> + c ||g_0|| ||g_w||`` with ``g_w = sum_t w_t g_t``.

  With ``a = ||g_w|| / (c ||g_0||)`` the minimizer is the projection ``w(a)`` of
  ``-a g_0`` onto the hull of the gradients (``qp.solve``), so the solver finds the root
  of ``psi(a) = ||g_w(a)|| - c ||g_0|| a`` by Newton steps on the current face of the hull,
  safeguarded by bisection on a bracket. Each step is exact; the result is exact once the
  face is right.

  Returns:
    ``(weights_T, norm)``: the dual weights and ``||g_w||``, both for the Gram matrix given.
  """
  num_tasks = gram_TxT.shape[0]
  dtype = gram_TxT.dtype
  scale = jnp.trace(gram_TxT) / num_tasks
  gram_TxT = gram_TxT / jnp.where(scale > 0, scale, 1.0)  # w ignores the scale.
  b_T = jnp.mean(gram_TxT, axis=1)  # <g_t, g_0>
  radius = c * jnp.sqrt(jnp.maximum(jnp.mean(gram_TxT), 0.0))
  radius = jnp.where(radius > 0, radius, 1.0)
  hi = jnp.sqrt(jnp.max(jnp.diag(gram_TxT))) / radius  # psi(hi) <= 0.
  tol = 64 * jnp.finfo(dtype).eps

  def evaluate(a):
    w_T, free_T = qp.solve(gram_TxT, a * b_T, simplex=True)
    norm = jnp.sqrt(jnp.maximum(w_T @ gram_TxT @ w_T, 0.0))
    # On this face w(a) is affine in a: dw/da is the difference of two face solutions.
    dw_T = (qp.face_solve(gram_TxT, b_T, free_T, simplex=True)[0]
            - qp.face_solve(gram_TxT, jnp.zeros_like(b_T), free_T, simplex=True)[0])
    dpsi = w_T @ gram_TxT @ dw_T / jnp.where(norm > 0, norm, 1.0) - radius
    return w_T, norm, norm - radius * a, dpsi

  def step(carry):
    a, lo, hi, _, _, _, it = carry
    w_T, norm, psi, dpsi = evaluate(a)
    lo, hi = jnp.where(psi > 0, a, lo), jnp.where(psi > 0, hi, a)
    newton = a - psi / jnp.where(dpsi != 0, dpsi, -1.0)
    inside = (newton > lo) & (newton < hi)
    done = jnp.abs(psi) <= tol * (norm + radius * a)
    return jnp.where(inside, newton, 0.5 * (lo + hi)), lo, hi, w_T, norm, done, it + 1

  def cond(carry):
    return ~carry[5] & (carry[6] < max_iters)

  zero = jnp.zeros((), dtype)
  init = (0.5 * hi, zero, hi, jnp.full((num_tasks,), 1.0 / num_tasks, dtype), zero,
          jnp.array(False), jnp.array(0))
  _, _, _, w_T, norm, _, _ = jax.lax.while_loop(cond, step, init)
  return w_T, norm * jnp.sqrt(jnp.where(scale > 0, scale, 1.0))


def cagrad(c: float = 0.4, *, rescale: int = 1, max_iters: int = 30) -> base.GradBalancer:
  """Conflict-averse gradient descent.

  The direction ``d = g_0 + c ||g_0|| g_w / ||g_w||`` (``g_0`` the mean gradient) maximizes
  the worst task's improvement ``min_t <g_t, d>`` over the ball ``||d - g_0|| <= c ||g_0||``;
  ``w`` solves its dual over the simplex (``dual_weights``, exact, in JAX). With ``c = 0``
  it is the mean gradient. As the official code, the direction is divided by ``1 + c^2``
  (``rescale=1``), ``1 + c`` (``rescale=2``) or kept (``rescale=0``).

  Args:
    c: the ball's radius relative to ``||g_0||``, in ``[0, 1)``.
    rescale: 0, 1 or 2, as above.
    max_iters: cap on the dual solver's Newton steps.

  Returns:
    A ``base.GradBalancer`` built by ``options.weighted`` (state ``weights_T``: the weights
    of ``d``, ``(1/T + lambda w_t) / rescaling``).

  Liu et al. 2021, Conflict-Averse Gradient Descent for Multi-task Learning, arXiv 2110.14048.
  """
  if rescale not in (0, 1, 2):
    raise ValueError(f"rescale must be 0, 1 or 2, got {rescale!r}.")
  divisor = {0: 1.0, 1: 1.0 + c**2, 2: 1.0 + c}[rescale]

  def weights_fn(gram_TxT, state, *, losses_T, key):
    del losses_T, key
    num_tasks = gram_TxT.shape[0]
    mean_T = jnp.full((num_tasks,), 1.0 / num_tasks, gram_TxT.dtype)
    if c == 0:
      return mean_T, state
    w_T, norm = dual_weights(gram_TxT, c, max_iters=max_iters)
    g0_norm = jnp.sqrt(jnp.maximum(jnp.mean(gram_TxT), 0.0))
    lam = c * g0_norm / jnp.where(norm > 0, norm, 1.0)
    return (mean_T + lam * w_T) / divisor, state

  return options.weighted(weights_fn)
