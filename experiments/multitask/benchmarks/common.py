"""What a multitask benchmark hands the experiment: model, losses, batches, evaluation."""

from typing import Callable, Mapping, NamedTuple

import jax
import numpy as np

from metalm.data import multitask
from metalm.mtl import base

Scores = dict[str, dict[str, float]]


class Benchmark(NamedTuple):
  """One benchmark, set up from a config.

  Attributes:
    model: the multitask network.
    loss_fns: ``loss_fns[task](out, y) -> (loss, metrics)``.
    batcher: training minibatches, ``batcher.batch(step, batch_size)``.
    evaluate: ``evaluate(params, model_state) -> {task: {metric: value}}`` on the
      evaluation split.
    higher_is_better: ``{task: {metric: bool}}`` for ``delta_m``.
  """

  model: base.MultiTaskModel
  loss_fns: Mapping[str, Callable]
  batcher: multitask.ArrayBatcher
  evaluate: Callable[..., Scores]
  higher_is_better: Mapping[str, Mapping[str, bool]]


def task_names(spec: str, known: tuple[str, ...], field: str) -> tuple[str, ...]:
  """The tasks of a comma-separated ``spec``, each one of ``known``, none twice."""
  names = tuple(t.strip() for t in spec.split(",") if t.strip())
  unknown = [t for t in names if t not in known]
  if not names or unknown or len(set(names)) < len(names):
    raise ValueError(f"{field}={spec!r}: give a comma-separated subset of {list(known)} "
                     f"without repeats (unknown: {unknown}).")
  return names


def predict_fn(model: base.MultiTaskModel):
  """Jitted ``predict(params, model_state, x) -> {task: output}`` in evaluation mode."""

  @jax.jit
  def predict(params, model_state, x):
    rep, state = model.encode(params, model_state, x, train=False)
    outputs, _ = model.decode(params, state, rep, train=False)
    return outputs

  return predict


def accumulate(predict, params, model_state, batches, sums_fn) -> dict:
  """Adds ``sums_fn(outputs, y)`` (a pytree of sums) over ``batches`` (``MultiTaskBatch`` es)."""
  total = None
  for batch in batches:
    sums = jax.device_get(sums_fn(predict(params, model_state, batch.x), batch.y))
    total = sums if total is None else jax.tree.map(np.add, total, sums)
  return total


def to_python(scores) -> Scores:
  return {task: {k: float(v) for k, v in metrics.items()} for task, metrics in scores.items()}
