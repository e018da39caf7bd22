"""Metrics to the console (progress bar, rate, ETA), ``metrics.jsonl`` and TensorBoard."""

import json
import logging as std_logging
import os
import time

import jax
import numpy as np
from absl import logging

from metalm.train import tensorboard

BAR_WIDTH = 20


class MetricWriter:
  """Appends one JSON object per logged step, and the same scalars to TensorBoard.

  ``workdir/metrics.jsonl`` gets one row per logged step; ``workdir/tensorboard/`` one
  event file per process that logs. On resume, rows past the resume step are dropped
  and the event file starts with a restart marker at ``resume_step + 1``, so TensorBoard
  drops those steps too: they were written after the last checkpoint by the run that was
  interrupted, and the resumed run writes them again, identically. Only process 0 of a
  multi-process run writes.
  """

  def __init__(self, workdir: str, *, resume_step: int = 0):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.logdir = os.path.join(workdir, "tensorboard")
    self.resume_step = resume_step
    self.primary = jax.process_index() == 0
    self._events = None
    if not self.primary:
      return
    os.makedirs(workdir, exist_ok=True)
    if os.path.exists(self.path):
      with open(self.path) as f:
        rows = [line for line in f if line.strip()]
      kept = [r for r in rows if json.loads(r).get("step", 0) <= resume_step]
      if len(kept) != len(rows):
        with open(self.path, "w") as f:
          f.writelines(kept)

  def write(self, step: int, scalars: dict) -> None:
    if not self.primary:
      return
    row = {"step": step, **{k: _to_python(v) for k, v in scalars.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self._events is None:  # Opened on the first row: a finished run adds no file.
      self._events = tensorboard.SummaryWriter(self.logdir)
      self._events.session_start(self.resume_step + 1)
    self._events.scalars(step, {k: v for k, v in row.items()
                                if k != "step" and isinstance(v, (int, float))})
    self._events.flush()


def _to_python(value):
  value = np.asarray(value)
  return value.item() if value.ndim == 0 else value.tolist()


class Progress:
  """Console lines ``step k/N [####....] p% | metrics | steps/s | ETA``."""

  def __init__(self, first_step: int, num_steps: int):
    self.num_steps = num_steps
    self.last_step, self.last_time = first_step, time.perf_counter()

  def rate(self, step: int) -> float:
    now = time.perf_counter()
    rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
    self.last_step, self.last_time = step, now
    return rate

  def log(self, step: int, scalars: dict, rate: float) -> None:
    eta = (self.num_steps - step) / max(rate, 1e-9)
    shown = "".join(f" | {k} {v:.4g}" for k, v in scalars.items())
    logging.info("step %d/%d %s%s | %.1f steps/s | ETA %s", step, self.num_steps,
                 bar(step, self.num_steps), shown, rate, _duration(eta))


def bar(step: int, num_steps: int, width: int = BAR_WIDTH) -> str:
  """``[########............] 40%``: the fraction of ``num_steps`` done."""
  fraction = min(max(step / max(num_steps, 1), 0.0), 1.0)
  filled = int(fraction * width)
  return f"[{'#' * filled}{'.' * (width - filled)}] {int(100 * fraction)}%"


def _duration(seconds: float) -> str:
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class _DropLibraryInfo(std_logging.Filter):
  """Keeps warnings from checkpointing libraries, drops their per-save INFO lines."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def quiet_library_logs() -> None:
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _DropLibraryInfo) for f in handler.filters):
    handler.addFilter(_DropLibraryInfo())
