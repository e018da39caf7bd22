"""Metrics to the console (with rate and ETA) and to ``workdir/metrics.jsonl``."""

import json
import logging as std_logging
import os
import time

import numpy as np
from absl import logging


class MetricWriter:
  """Appends one JSON object per logged step; on resume drops rows past the resume step.

  Rows past the restored step were written after the last checkpoint by the run that
  was interrupted; the resumed run writes them again, identically.
  """

  def __init__(self, workdir: str, *, resume_step: int = 0):
    self.path = os.path.join(workdir, "metrics.jsonl")
    os.makedirs(workdir, exist_ok=True)
    if os.path.exists(self.path):
      with open(self.path) as f:
        rows = [line for line in f if line.strip()]
      kept = [r for r in rows if json.loads(r).get("step", 0) <= resume_step]
      if len(kept) != len(rows):
        with open(self.path, "w") as f:
          f.writelines(kept)

  def write(self, step: int, scalars: dict) -> None:
    row = {"step": step, **{k: _to_python(v) for k, v in scalars.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")


def _to_python(value):
  value = np.asarray(value)
  return value.item() if value.ndim == 0 else value.tolist()


class Progress:
  """Console lines ``step k/N | metrics | steps/s | ETA``."""

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
    shown = " | ".join(f"{k} {v:.4g}" for k, v in scalars.items())
    logging.info(
        "step %d/%d | %s | %.1f steps/s | ETA %s",
        step, self.num_steps, shown, rate, _duration(eta),
    )


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
