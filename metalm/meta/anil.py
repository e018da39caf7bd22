"""ANIL: almost no inner loop, only the head adapts (Raghu et al. 2020, arXiv:1909.09157)."""

import optax

from metalm.meta import base, partial_adapt
from metalm.models import functional


def anil(
    model: functional.ModelFns,
    loss_fn,
    *,
    inner_tx: optax.GradientTransformation | None = None,
    inner_steps: int = 1,
    first_order: bool = False,
    remat: bool = False,
) -> base.MetaLearner:
  """MAML that adapts only ``params["head"]`` in the inner loop.

  The body is shared across tasks and not differentiated in the inner loop; the
  outer gradient reaches both body and head. The forward pass still runs the whole
  model at every inner step (``ModelFns`` exposes no separate body).

  Args:
    model: the model's pure functions; its output layer is named ``"head"``.
    loss_fn: ``loss(out, y) -> (loss, metrics)`` for one set.
    inner_tx: inner optimizer (any optax transformation); SGD with rate 0.01 if None.
    inner_steps: inner steps on the support set.
    first_order: ignore second derivatives through the inner loop.
    remat: rematerialize inner steps in the backward pass to save memory.

  Returns:
    A ``base.MetaLearner`` over the model parameters.

  Reference: Raghu, Raghu, Bengio, Vinyals 2020, arXiv:1909.09157.
  """
  return partial_adapt.learner(
      model,
      loss_fn,
      part="head",
      inner_tx=inner_tx,
      inner_steps=inner_steps,
      first_order=first_order,
      remat=remat,
  )
