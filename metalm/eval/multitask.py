"""Multitask summaries: delta_m, delta_p and mean rank.

Scores are nested dicts ``{task: {metric: value}}``; a baseline (usually the single-task
networks) and ``higher_is_better`` (``{task: {metric: bool}}``) have the same layout.
The two relative-change summaries differ in sign and in weighting:

  ``delta_m``: mean over ALL metrics flattened, negative when better (lower is better).
  ``delta_p``: mean over tasks of each task's mean over its metrics, positive when better.

With one metric per task (or the same number for every task) ``delta_p == -delta_m``.
"""

from typing import Mapping

import numpy as np

Scores = Mapping[str, Mapping[str, float]]


def _check_layout(scores: Scores, reference: Scores, what: str) -> None:
  if not any(reference.values()):
    raise ValueError("higher_is_better names no metric.")
  if set(scores) != set(reference):
    raise ValueError(f"{what} has tasks {sorted(scores)}; expected {sorted(reference)}.")
  for task, metrics in reference.items():
    if set(scores[task]) != set(metrics):
      raise ValueError(f"{what}[{task!r}] has metrics {sorted(scores[task])}; "
                       f"expected {sorted(metrics)}.")


def relative_improvements(results: Scores, baselines: Scores,
                          higher_is_better: Mapping[str, Mapping[str, bool]]) -> dict:
  """Per-metric signed relative change in percent, positive when ``results`` is better.

  ``100 * s_k * (M_k - B_k) / B_k`` with ``s_k = +1`` where higher is better, else -1.

  Returns:
    ``{task: {metric: improvement}}``.
  """
  _check_layout(results, higher_is_better, "results")
  _check_layout(baselines, higher_is_better, "baselines")
  out = {}
  for task, metrics in higher_is_better.items():
    out[task] = {}
    for metric, higher in metrics.items():
      base = float(baselines[task][metric])
      if base == 0.0:
        raise ValueError(f"Baseline {task}/{metric} is 0: the relative change is undefined.")
      sign = 1.0 if higher else -1.0
      out[task][metric] = 100.0 * sign * (float(results[task][metric]) - base) / base
  return out


def delta_m(results: Scores, baselines: Scores,
            higher_is_better: Mapping[str, Mapping[str, bool]]) -> float:
  """Mean relative change over all K metrics, in percent; LOWER is better (negative = gain).

  ``delta_m = (100 / K) sum_k (-1)^{h_k} (M_k - B_k) / B_k``, ``h_k = 1`` where higher is
  better; every metric weighs the same, so tasks with more metrics weigh more.

  Reference: Maninis, Radosavovic, Kokkinos, 2019, arXiv:1904.08918; the convention of
  Nash-MTL (Navon et al., 2022, arXiv:2202.01017) and FAMO (Liu et al., 2023,
  arXiv:2306.03792).
  """
  changes = relative_improvements(results, baselines, higher_is_better)
  flat = [v for metrics in changes.values() for v in metrics.values()]
  return -float(np.mean(flat))


def delta_p(results: Scores, baselines: Scores,
            higher_is_better: Mapping[str, Mapping[str, bool]]) -> float:
  """LibMTL's improvement over the baseline, in percent; HIGHER is better.

  ``delta_p = (100 / T) sum_t (1 / M_t) sum_m (-1)^{w_tm} (B_tm - N_tm) / B_tm`` with
  ``w_tm = 1`` where higher is better: each task's metrics are averaged first, so every
  task weighs the same. LibMTL's ``count_improvement`` (``LibMTL/utils.py``) computes the
  same sum as a fraction; this returns percent, as its documented formula states.

  Reference: Lin & Zhang, 2023 (LibMTL), arXiv:2203.14338.
  """
  changes = relative_improvements(results, baselines, higher_is_better)
  return float(np.mean([np.mean(list(metrics.values())) for metrics in changes.values()]))


def _ranks(values: np.ndarray, higher: bool) -> np.ndarray:
  """1 for the best; tied values share the mean of the ranks they span."""
  keys = -values if higher else values
  better = (keys[None, :] < keys[:, None]).sum(axis=1)
  tied = (keys[None, :] == keys[:, None]).sum(axis=1)
  return 1.0 + better + (tied - 1) / 2.0


def mean_rank(scores_by_method: Mapping[str, Scores],
              higher_is_better: Mapping[str, Mapping[str, bool]]) -> dict[str, float]:
  """Each method's rank averaged over all metrics (1 = best on every metric; lower is better).

  Methods are ranked metric by metric (ties take the mean of the ranks they span), then
  the ranks are averaged over all metrics flattened.

  Args:
    scores_by_method: ``{method: {task: {metric: value}}}``.
    higher_is_better: ``{task: {metric: bool}}``.

  Returns:
    ``{method: mean rank}``, in the order of ``scores_by_method``.
  """
  methods = list(scores_by_method)
  if not methods:
    raise ValueError("mean_rank needs at least one method.")
  for method in methods:
    _check_layout(scores_by_method[method], higher_is_better, f"scores of {method!r}")
  ranks = []
  for task, metrics in higher_is_better.items():
    for metric, higher in metrics.items():
      values = np.array([float(scores_by_method[m][task][metric]) for m in methods])
      if not np.all(np.isfinite(values)):
        raise ValueError(f"Non-finite score for {task}/{metric}: {values} ({methods}).")
      ranks.append(_ranks(values, higher))
  mean = np.mean(ranks, axis=0)
  return {method: float(r) for method, r in zip(methods, mean, strict=True)}
