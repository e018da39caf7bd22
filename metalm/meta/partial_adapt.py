"""Inner loops that adapt one part of the parameters: the head (ANIL) or the body (BOIL).

Every metalm model names its output layer ``"head"`` (``params["head"]``); the body is
every other top-level entry. The frozen part is closed over by the inner loss, so the
inner gradients are taken with respect to the adapted part only, while the outer
gradient still reaches both parts (through the inner loop too, unless first-order).
"""

import functools

import optax

from metalm import types
from metalm.meta import base, inner_loop
from metalm.models import functional

HEAD = "head"
PARTS = ("head", "body")


def split(params: types.Params, part: str) -> tuple[types.Params, types.Params]:
  """Splits ``params`` into ``(adapted, frozen)``.

  Args:
    params: model parameters with a top-level ``"head"`` entry.
    part: ``"head"`` adapts ``params["head"]``; ``"body"`` adapts every other entry.

  Returns:
    ``(adapted, frozen)``: the head subtree and a dict of the body entries, in the
    order ``part`` asks for.
  """
  if part not in PARTS:
    raise ValueError(f"Unknown part {part!r}; choose one of {PARTS}.")
  if HEAD not in params:
    raise ValueError(
        f"The model's parameters have no {HEAD!r} entry (found {sorted(params)}); "
        "ANIL and BOIL need the output layer named 'head'."
    )
  head = params[HEAD]
  body = {name: value for name, value in params.items() if name != HEAD}
  return (head, body) if part == "head" else (body, head)


def merge(adapted: types.Params, frozen: types.Params, part: str) -> types.Params:
  """Inverse of ``split``: the full parameter dict."""
  head, body = (adapted, frozen) if part == "head" else (frozen, adapted)
  return {**body, HEAD: head}


def learner(
    model: functional.ModelFns,
    loss_fn,
    *,
    part: str,
    inner_tx: optax.GradientTransformation | None = None,
    inner_steps: int = 1,
    first_order: bool = False,
    remat: bool = False,
) -> base.MetaLearner:
  """MAML whose inner loop adapts only ``part`` of the parameters.

  Args:
    model: the model's pure functions; its parameters have a ``"head"`` entry.
    loss_fn: ``loss(out, y) -> (loss, metrics)`` for one set.
    part: ``"head"`` (ANIL) or ``"body"`` (BOIL): what the inner loop adapts.
    inner_tx: inner optimizer (any optax transformation); SGD with rate 0.01 if None.
      Its state covers the adapted part only.
    inner_steps: inner steps on the support set.
    first_order: ignore second derivatives through the inner loop.
    remat: rematerialize inner steps in the backward pass to save memory.

  Returns:
    A ``base.MetaLearner`` whose meta-parameters are the model parameters.
  """
  inner_tx = optax.sgd(0.01) if inner_tx is None else inner_tx
  if part not in PARTS:
    raise ValueError(f"Unknown part {part!r}; choose one of {PARTS}.")

  def support_loss(adapted, state, key, *, frozen, support: types.Batch):
    params = merge(adapted, frozen, part)
    out, state = model.apply(params, state, support.x, train=True, key=key)
    return loss_fn(out, support.y)[0], state

  def adapt(meta_params, state, support: types.Batch, key):
    adapted, frozen = split(meta_params, part)
    adapted, state, _ = inner_loop.fit(
        functools.partial(support_loss, frozen=frozen, support=support),
        adapted,
        state,
        key,
        tx=inner_tx,
        steps=inner_steps,
        first_order=first_order,
        remat=remat,
    )
    return merge(adapted, frozen, part), state

  predict = base.adapted_predict(model, adapt)
  return base.MetaLearner(model.init, adapt, base.query_loss(predict, loss_fn), predict)
