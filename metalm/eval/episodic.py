"""Episodic evaluation of a meta-learner on held-out tasks, with 95% CIs."""

import jax
import numpy as np

from metalm import types
from metalm.meta import base


def per_task(
    learner: base.MetaLearner,
    meta_params: types.Params,
    state: types.ModelState,
    tasks: types.TaskBatch,
    key: types.PRNGKey,
    *,
    batch_size: int = 100,
) -> dict[str, jax.Array]:
  """Query loss and metrics after adaptation, for each of the T tasks.

  Tasks run ``batch_size`` at a time (``lax.map`` over vmapped chunks) so memory
  stays bounded for any T.

  Returns:
    ``{"loss": [T], <metric>: [T], ...}``.
  """
  keys = jax.random.split(key, tasks.num_tasks)

  def one(args):
    task, task_key = args
    loss, aux = learner.outer_loss(meta_params, state, task, task_key)
    return {"loss": loss, **aux.metrics}

  return jax.lax.map(one, (tasks, keys), batch_size=batch_size)


def confidence_interval(values) -> tuple[float, float]:
  """Mean and the half-width of its normal 95% confidence interval."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(values.size))


def summarize(values_by_metric: dict[str, jax.Array]) -> dict[str, dict[str, float]]:
  out = {}
  for name, values in values_by_metric.items():
    mean, ci95 = confidence_interval(values)
    out[name] = {"mean": mean, "ci95": ci95}
  return out


def evaluate(learner, meta_params, state, tasks, key, *, batch_size: int = 100):
  """``{metric: {"mean", "ci95"}}`` over the tasks; jit-compiled once per learner."""
  fn = jax.jit(lambda p, s, t, k: per_task(learner, p, s, t, k, batch_size=batch_size))
  return summarize(jax.device_get(fn(meta_params, state, tasks, key)))
