"""Meta-SGD: meta-learned per-parameter inner learning rates (Li et al. 2017, arXiv:1707.09835)."""

import functools

import jax
import jax.numpy as jnp
import optax

from metalm import types
from metalm.meta import base, inner_loop
from metalm.models import functional


def scale_by_rates(rates: types.Params) -> optax.GradientTransformation:
  """The inner update ``-rates * grad``, elementwise, as a stateless optax transformation.

  Args:
    rates: per-parameter learning rates, the structure and shapes of the parameters.
      They may be traced values, so the update stays differentiable in them.
  """

  def update(grads, params=None):
    del params
    return jax.tree.map(lambda g, r: -r * g, grads, rates)

  return optax.stateless(update)


def meta_sgd(
    model: functional.ModelFns,
    loss_fn,
    *,
    inner_steps: int = 1,
    init_lr: float = 0.01,
    first_order: bool = False,
    remat: bool = False,
) -> base.MetaLearner:
  """Meta-learns an initialization and a learning rate for every parameter entry.

  Meta-parameters are ``{"params": model_params, "lr": rates}`` with ``rates`` of the
  same structure, shapes and dtypes as ``model_params``, initialised to ``init_lr``.
  Each inner step is ``params <- params - lr * grad``. With ``first_order=True`` the
  inner gradients are constants, yet the rates still get the gradient through the
  update ``-lr * grad``.

  Args:
    model: the model's pure functions.
    loss_fn: ``loss(out, y) -> (loss, metrics)`` for one set.
    inner_steps: inner steps on the support set, all with the same rates.
    init_lr: initial value of every rate.
    first_order: ignore second derivatives through the inner loop.
    remat: rematerialize inner steps in the backward pass to save memory.

  Returns:
    A ``base.MetaLearner`` whose ``adapt`` returns model parameters.

  Reference: Li, Zhou, Chen, Li 2017, arXiv:1707.09835.
  """

  def init(key):
    params, state = model.init(key)
    rates = jax.tree.map(lambda p: jnp.full_like(p, init_lr), params)
    return {"params": params, "lr": rates}, state

  support_loss = base.set_loss(model, loss_fn)

  def adapt(meta_params, state, support: types.Batch, key):
    params, state, _ = inner_loop.fit(
        functools.partial(support_loss, batch=support),
        meta_params["params"],
        state,
        key,
        tx=scale_by_rates(meta_params["lr"]),
        steps=inner_steps,
        first_order=first_order,
        remat=remat,
    )
    return params, state

  predict = base.adapted_predict(model, adapt)
  return base.MetaLearner(init, adapt, base.query_loss(predict, loss_fn), predict)
