"""CAVIA: fast context adaptation (Zintgraf et al. 2019, arXiv:1810.03642)."""

import functools

import jax
import jax.numpy as jnp
import optax

from metalm import types
from metalm.meta import base, inner_loop
from metalm.models import context, functional


def split_context(params: types.Params) -> tuple[types.Params, jax.Array]:
  """``(network parameters, context)`` of a context model's parameters.

  Raises:
    ValueError: the model has no ``"context"`` parameter.
  """
  if context.CONTEXT not in params:
    raise ValueError(
        f"The model's parameters have no {context.CONTEXT!r} entry (found "
        f"{sorted(params)}); CAVIA needs a context model: 'context_mlp' or "
        "'context_conv4' in config.model, or metalm.models.context.with_context.")
  network = {k: v for k, v in params.items() if k != context.CONTEXT}
  return network, params[context.CONTEXT]


def cavia(
    model: functional.ModelFns,
    loss_fn,
    *,
    inner_tx: optax.GradientTransformation | None = None,
    inner_steps: int = 1,
    first_order: bool = False,
    remat: bool = False,
) -> base.MetaLearner:
  """Adapts only a context vector in the inner loop; meta-learns the network.

  Meta-parameters are the model's parameters without ``"context"``. Every task
  starts from a zero context (it is not meta-learned); the inner loop updates only
  the context, and the outer gradient reaches the network through the adapted
  context (unless first-order) and through the query loss.

  Args:
    model: a context model (``metalm.models.context``): its parameters hold the
      context vector as ``params["context"]``.
    loss_fn: ``loss(out, y) -> (loss, metrics)`` for one set.
    inner_tx: inner optimizer of the context; SGD with rate 1.0 (CAVIA's) if None.
    inner_steps: inner steps on the support set.
    first_order: ignore second derivatives through the inner loop.
    remat: rematerialize inner steps in the backward pass to save memory.

  Returns:
    A ``base.MetaLearner`` whose ``adapt`` returns model parameters with the
    adapted context.

  Reference: Zintgraf, Shiarlis, Kurin, Hofmann, Whiteson 2019, arXiv:1810.03642.
  """
  inner_tx = optax.sgd(1.0) if inner_tx is None else inner_tx
  support_loss = base.set_loss(model, loss_fn)

  def init(key):
    params, state = model.init(key)
    return split_context(params)[0], state

  def context_loss(ctx, state, key, *, network, support: types.Batch):
    return support_loss({**network, context.CONTEXT: ctx}, state, key, batch=support)

  def adapt(meta_params, state, support: types.Batch, key):
    shapes = jax.eval_shape(model.init, jax.random.key(0))[0]
    zero = jnp.zeros(split_context(shapes)[1].shape, jax.tree.leaves(meta_params)[0].dtype)
    ctx, state, _ = inner_loop.fit(
        functools.partial(context_loss, network=meta_params, support=support),
        zero,
        state,
        key,
        tx=inner_tx,
        steps=inner_steps,
        first_order=first_order,
        remat=remat,
    )
    return {**meta_params, context.CONTEXT: ctx}, state

  predict = base.adapted_predict(model, adapt)
  return base.MetaLearner(init, adapt, base.query_loss(predict, loss_fn), predict)
