"""Task adaptation: inner-loop optimization as a ``lax.scan`` over optax updates."""

from typing import Callable

import jax
import optax

from metalm import types

# loss(params, state, key) -> (loss, state)
InnerLoss = Callable[
    [types.Params, types.ModelState, types.PRNGKey],
    tuple[jax.Array, types.ModelState],
]


def fit(
    loss_fn: InnerLoss,
    params: types.Params,
    state: types.ModelState,
    key: types.PRNGKey,
    *,
    tx: optax.GradientTransformation,
    steps: int,
    first_order: bool = False,
    remat: bool = False,
):
  """Runs ``steps`` optimizer steps on ``loss_fn`` from ``params``.

  The result stays differentiable with respect to ``params`` (second-order MAML).
  With ``first_order=True`` the inner gradients are constants, so the Jacobian of
  the adapted parameters with respect to ``params`` is the identity (FOMAML).

  Args:
    loss_fn: ``loss(params, state, key) -> (loss, state)``.
    params: starting parameters.
    state: model state threaded through the steps (BatchNorm statistics).
    key: PRNG key, split once per step.
    tx: the inner optimizer, any optax transformation.
    steps: number of inner steps (static); 0 returns ``params`` unchanged.
    first_order: drop second-order terms by stopping gradients through the inner
      gradients.
    remat: recompute each step's activations in the backward pass
      (``jax.checkpoint``), trading compute for memory on long unrolls.

  Returns:
    ``(params, state, losses)`` with ``losses`` the ``[steps]`` pre-update losses.
  """

  def step(carry, step_key):
    params, opt_state, state = carry
    (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, state, step_key
    )
    if first_order:
      grads = jax.lax.stop_gradient(grads)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state, state), loss

  if remat:
    step = jax.checkpoint(step)
  (params, _, state), losses = jax.lax.scan(
      step, (params, tx.init(params), state), jax.random.split(key, steps)
  )
  return params, state, losses
