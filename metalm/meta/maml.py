"""MAML and first-order MAML (Finn et al. 2017, arXiv:1703.03400)."""

import functools

import optax

from metalm import types
from metalm.meta import base, inner_loop
from metalm.models import functional


def maml(
    model: functional.ModelFns,
    loss_fn,
    *,
    inner_tx: optax.GradientTransformation | None = None,
    inner_steps: int = 1,
    first_order: bool = False,
    remat: bool = False,
) -> base.MetaLearner:
  """Model-agnostic meta-learning: meta-learns an initialization of all parameters.

  Args:
    model: the model's pure functions.
    loss_fn: ``loss(out, y) -> (loss, metrics)`` for one set.
    inner_tx: inner optimizer (any optax transformation); SGD with rate 0.01 if None.
    inner_steps: inner steps on the support set.
    first_order: FOMAML, which ignores second derivatives through the inner loop.
    remat: rematerialize inner steps in the backward pass to save memory.
  """
  inner_tx = optax.sgd(0.01) if inner_tx is None else inner_tx

  support_loss = base.set_loss(model, loss_fn)

  def adapt(meta_params, state, support: types.Batch, key):
    params, state, _ = inner_loop.fit(
        functools.partial(support_loss, batch=support),
        meta_params,
        state,
        key,
        tx=inner_tx,
        steps=inner_steps,
        first_order=first_order,
        remat=remat,
    )
    return params, state

  predict = base.adapted_predict(model, adapt)
  return base.MetaLearner(model.init, adapt, base.query_loss(predict, loss_fn), predict)


fomaml = functools.partial(maml, first_order=True)
fomaml.__doc__ = """First-order MAML (Finn et al. 2017, arXiv:1703.03400, Sec. 5.2).

``maml`` with ``first_order=True``: inner gradients are constants in the outer step.
"""
