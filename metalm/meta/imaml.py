"""iMAML: meta-learning with implicit gradients (Rajeswaran et al. 2019, arXiv:1909.04630)."""

import jax
import optax

from metalm import types
from metalm.meta import base, inner_loop
from metalm.models import functional


def imaml(
    model: functional.ModelFns,
    loss_fn,
    *,
    inner_tx: optax.GradientTransformation | None = None,
    inner_steps: int = 16,
    lam: float = 2.0,
    cg_steps: int = 5,
) -> base.MetaLearner:
  """Meta-learns an initialization through the implicit gradient of a proximal inner loop.

  ``adapt`` approximately solves ``phi = argmin L_s(phi) + lam / 2 ||phi - theta||^2``
  with ``inner_steps`` steps of ``inner_tx`` from ``theta``, and nothing is stored for
  the backward pass. Its custom VJP maps the query gradient ``v = dL_q / dphi`` to
  ``(I + H / lam)^{-1} v``, with ``H`` the Hessian of ``L_s`` at ``phi``, by
  ``cg_steps`` of conjugate gradient on Hessian-vector products. Memory is that of
  one inner step, whatever ``inner_steps``. The gradient is exact when the inner
  problem is solved exactly and CG converges (``cg_steps`` >= number of parameters).

  Args:
    model: the model's pure functions.
    loss_fn: ``loss(out, y) -> (loss, metrics)`` for one set.
    inner_tx: inner optimizer of the proximal objective; SGD with rate 0.01 if None.
    inner_steps: inner steps on the support set.
    lam: the proximal weight lambda (> 0); larger keeps ``phi`` nearer ``theta``.
    cg_steps: conjugate-gradient iterations of the implicit gradient.

  Returns:
    A ``base.MetaLearner`` whose ``adapt`` returns model parameters.

  Reference: Rajeswaran, Finn, Kakade, Levine 2019, arXiv:1909.04630.
  """
  if lam <= 0:
    raise ValueError(f"lam must be positive, got {lam}.")
  inner_tx = optax.sgd(0.01) if inner_tx is None else inner_tx
  support_loss = base.set_loss(model, loss_fn)

  def solve(theta, state, support: types.Batch, key):
    theta = jax.lax.stop_gradient(theta)

    def proximal_loss(phi, state, key):
      loss, state = support_loss(phi, state, key, batch=support)
      distance = optax.tree.norm(optax.tree.sub(phi, theta), squared=True)
      return loss + 0.5 * lam * distance, state

    phi, state, _ = inner_loop.fit(proximal_loss, theta, state, key, tx=inner_tx,
                                   steps=inner_steps)
    return phi, state

  @jax.custom_vjp
  def adapt(meta_params, state, support: types.Batch, key):
    return solve(meta_params, state, support, key)

  def adapt_fwd(meta_params, state, support, key):
    phi, new_state = solve(meta_params, state, support, key)
    return (phi, new_state), (phi, state, support, key)

  def adapt_bwd(residuals, cotangents):
    phi, state, support, key = residuals
    v, _ = cotangents  # The adapted model state (BatchNorm statistics) is not differentiated.
    grad_fn = jax.grad(lambda p: support_loss(p, state, key, batch=support)[0])
    _, hvp = jax.linearize(grad_fn, phi)

    def matvec(u):
      return optax.tree.add_scale(u, 1.0 / lam, hvp(u))

    # tol=0: run cg_steps iterations unless the residual vanishes exactly.
    grads, _ = jax.scipy.sparse.linalg.cg(matvec, v, maxiter=cg_steps, tol=0.0)
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, phi)
    return grads, None, None, None

  adapt.defvjp(adapt_fwd, adapt_bwd)

  predict = base.adapted_predict(model, adapt)
  return base.MetaLearner(model.init, adapt, base.query_loss(predict, loss_fn), predict)

