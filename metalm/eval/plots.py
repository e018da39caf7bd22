"""Evaluation plots as PNG: learning curves from ``metrics.jsonl``, results with 95% CIs.

Drawn on matplotlib ``Figure`` objects (no pyplot), so no display or backend is needed.
"""

import json
import math
import os
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from metalm.train import tensorboard


def read_metrics(workdir: str) -> list[dict]:
  """The rows of ``workdir/metrics.jsonl``."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def scalar_keys(rows: Sequence[dict]) -> list[str]:
  """Every key other than ``step`` with a number in some row, in first-seen order."""
  keys = {}
  for row in rows:
    for key, value in row.items():
      if key != "step" and _is_number(value):
        keys.setdefault(key, None)
  return list(keys)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def learning_curves(workdir: str, path: str | None = None,
                    keys: Sequence[str] | None = None) -> str:
  """Plots each logged scalar against step, one panel each; returns the PNG's path.

  A metric whose values are all positive and span a factor of 10 or more (a loss,
  usually) gets a log-scale y axis.

  Args:
    workdir: holds ``metrics.jsonl``.
    path: the PNG; ``workdir/learning_curves.png`` by default.
    keys: the metrics to plot; every scalar in the file by default.

  Raises:
    ValueError: the file has no rows, or none of ``keys``.
  """
  path = path or os.path.join(workdir, "learning_curves.png")
  rows = read_metrics(workdir)
  keys = list(keys) if keys is not None else scalar_keys(rows)
  if not rows or not keys:
    raise ValueError(f"No metrics to plot in {os.path.join(workdir, 'metrics.jsonl')}.")
  cols = min(3, len(keys))
  fig = Figure(figsize=(4 * cols, 2.8 * math.ceil(len(keys) / cols)))
  axes = fig.subplots(math.ceil(len(keys) / cols), cols, squeeze=False).ravel()
  for ax, key in zip(axes, keys, strict=False):
    points = [(r["step"], r[key]) for r in rows if _is_number(r.get(key))]
    if not points:
      raise ValueError(f"No values of {key!r} in {workdir}/metrics.jsonl; it has "
                       f"{scalar_keys(rows)}.")
    steps, values = np.array(points, np.float64).T
    ax.plot(steps, values, marker="." if len(steps) < 30 else None, linewidth=1.2)
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() > 0 and finite.max() >= 10 * finite.min():
      ax.set_yscale("log")
    ax.set_title(key, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  for ax in axes[len(keys):]:
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  return path


def _entries(results) -> list[tuple[str, float, float]]:
  if isinstance(results, Mapping):
    return [(str(label), float(mean), float(ci)) for label, (mean, ci) in results.items()]
  return [(str(r["label"]), float(r["accuracy"]), float(r["ci95"])) for r in results]


def accuracy_with_ci(path: str, results, *, ylabel: str = "accuracy (%)",
                     title: str | None = None, xlabel: str | None = None) -> str:
  """Plots each result's mean with its 95% confidence interval; returns ``path``.

  Args:
    path: the PNG.
    results: a list of ``{"label", "accuracy", "ci95"}``, or ``{label: (mean, ci95)}``.
    ylabel: the quantity (accuracy, MSE, ...).
    title: the figure's title.
    xlabel: what the labels are.
  """
  entries = _entries(results)
  if not entries:
    raise ValueError("No results to plot.")
  labels, means, cis = zip(*entries, strict=True)
  x = np.arange(len(labels))
  fig = Figure(figsize=(max(4.5, 1.2 * len(labels) + 1.5), 3.5))
  ax = fig.subplots()
  ax.errorbar(x, means, yerr=cis, fmt="o", capsize=6, markersize=6, linewidth=1.5)
  for xi, mean, ci in zip(x, means, cis, strict=True):
    ax.annotate(f"{mean:.4g} ± {ci:.2g}", (xi, mean), textcoords="offset points",
                xytext=(8, 0), va="center", fontsize=8)
  ax.set_xticks(x, labels, fontsize=8)
  ax.set_xlim(-0.6, len(labels) - 0.1)
  ax.set_ylabel(ylabel)
  if xlabel:
    ax.set_xlabel(xlabel)
  ax.set_title(title or f"{ylabel}: mean ± 95% CI", fontsize=10)
  ax.grid(axis="y", alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  return path


def to_tensorboard(workdir: str, step: int, paths: Sequence[str]) -> None:
  """Adds the PNGs at ``paths`` to ``workdir/tensorboard/`` as images at ``step``.

  Each image's tag is its file name without ``.png``.
  """
  writer = tensorboard.SummaryWriter(os.path.join(workdir, "tensorboard"))
  for path in paths:
    with open(path, "rb") as f:
      writer.image(step, os.path.splitext(os.path.basename(path))[0], f.read())
  writer.close()
