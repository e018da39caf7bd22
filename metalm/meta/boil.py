"""BOIL: body only in the inner loop, the head frozen (Oh et al. 2021, arXiv:2008.08882)."""

import optax

from metalm.meta import base, partial_adapt
from metalm.models import functional


def boil(
    model: functional.ModelFns,
    loss_fn,
    *,
    inner_tx: optax.GradientTransformation | None = None,
    inner_steps: int = 1,
    first_order: bool = False,
    remat: bool = False,
) -> base.MetaLearner:
  """MAML that adapts every parameter except ``params["head"]`` in the inner loop.

  The head is frozen during adaptation (an inner learning rate of zero in the paper)
  but meta-learned in the outer loop like the body.

  Args:
    model: the model's pure functions; its output layer is named ``"head"``.
    loss_fn: ``loss(out, y) -> (loss, metrics)`` for one set.
    inner_tx: inner optimizer (any optax transformation); SGD with rate 0.01 if None.
    inner_steps: inner steps on the support set.
    first_order: ignore second derivatives through the inner loop.
    remat: rematerialize inner steps in the backward pass to save memory.

  Returns:
    A ``base.MetaLearner`` over the model parameters.

  Reference: Oh, Yoo, Kim, Yun 2021, arXiv:2008.08882.
  """
  return partial_adapt.learner(
      model,
      loss_fn,
      part="body",
      inner_tx=inner_tx,
      inner_steps=inner_steps,
      first_order=first_order,
      remat=remat,
  )
