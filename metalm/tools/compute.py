"""Compute accounting: FLOPs and bytes per compiled step (XLA cost analysis) and energy.

The counts are XLA's static estimates for one call of the compiled function (a dot of
``[M, K] @ [K, N]`` counts ``2 * M * N * K``). XLA counts a loop's body once whatever its
trip count, so a program whose loops do products (``has_costly_loops``) is under-counted,
as are custom calls.
"""

import dataclasses
import re
import time
from typing import Any, Callable

import jax


def cost_analysis(fn: Callable[..., Any], *args, **kwargs) -> dict[str, float]:
  """XLA's cost analysis of ``jax.jit(fn)`` on these arguments, as one flat dict.

  Older jax versions return a list with one dict per device program; newer ones a dict.
  """
  return compiled_costs(jax.jit(fn).lower(*args, **kwargs).compile())


def compiled_costs(compiled) -> dict[str, float]:
  """XLA's cost analysis of an AOT-compiled function, as one flat dict."""
  costs = compiled.cost_analysis()
  if costs is None:
    return {}
  if isinstance(costs, (list, tuple)):
    merged: dict[str, float] = {}
    for program in costs:
      for name, value in (program or {}).items():
        merged[name] = merged.get(name, 0.0) + float(value)
    return merged
  return {name: float(value) for name, value in costs.items()}


_COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.\-]+) .*\{$")
_CALLEES = re.compile(r"(?:calls|to_apply|body|condition|branch_computations)=\{?([%\w.\-, ]+)")
_PRODUCT = re.compile(r"\s(?:dot|convolution|custom-call)\(")


def has_costly_loops(compiled) -> bool:
  """Whether a loop of a compiled program does matrix products (a ``scan`` over inner
  steps, ``lax.map`` over tasks, a solver's ``while``).

  XLA's cost analysis counts a loop's body once whatever its trip count, so the program's
  count is then a lower bound. Loops without products (the PRNG's rounds) are ignored.
  """
  bodies: dict[str, list[str]] = {}
  lines: list[str] = []
  for line in compiled.as_text().splitlines():
    match = _COMPUTATION.match(line)
    if match:
      lines = bodies.setdefault(match.group(1), [])
    else:
      lines.append(line)
  texts = {name: "\n".join(lines) for name, lines in bodies.items()}

  def has_products(name, seen):
    text = texts.get(name, "")
    if _PRODUCT.search(text):
      return True
    callees = {c.strip().lstrip("%") for group in _CALLEES.findall(text)
               for c in group.split(",")}
    return any(has_products(c, seen | {c}) for c in callees - seen if c in texts)

  loop_bodies = re.findall(r"\swhile\(.*?body=%([\w.\-]+)", "\n".join(texts.values()))
  return any(has_products(body, {body}) for body in loop_bodies)


def step_flops(fn: Callable[..., Any], *args, **kwargs) -> float:
  """Floating-point operations of one compiled call of ``fn``."""
  return cost_analysis(fn, *args, **kwargs).get("flops", 0.0)


def step_bytes(fn: Callable[..., Any], *args, **kwargs) -> float:
  """Bytes read and written by one compiled call of ``fn``."""
  return cost_analysis(fn, *args, **kwargs).get("bytes accessed", 0.0)


def timed(fn: Callable[..., Any], *args, **kwargs):
  """``(out, seconds)``: calls ``fn`` and waits for its results to be ready."""
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args, **kwargs))
  return out, time.perf_counter() - start


@dataclasses.dataclass
class ComputeMeter:
  """Host-side accumulator of FLOPs, time and energy over a run.

  Energy is an estimate from a stated device power: ``joules = watts * seconds``
  (e.g. a GPU's board power or a CPU's TDP), not a measurement.

  Attributes:
    power_watts: the assumed average device power.
    step_flops: FLOPs of each recorded step.
    step_seconds: measured wall-clock seconds of each recorded step.
  """

  power_watts: float
  step_flops: list[float] = dataclasses.field(default_factory=list)
  step_seconds: list[float] = dataclasses.field(default_factory=list)

  def record(self, flops: float, seconds: float) -> None:
    """Adds one step of ``flops`` that took ``seconds``."""
    self.step_flops.append(float(flops))
    self.step_seconds.append(float(seconds))

  @property
  def steps(self) -> int:
    return len(self.step_flops)

  @property
  def total_flops(self) -> float:
    return float(sum(self.step_flops))

  @property
  def total_seconds(self) -> float:
    return float(sum(self.step_seconds))

  @property
  def energy_joules(self) -> float:
    return self.power_watts * self.total_seconds

  @property
  def flops_per_second(self) -> float:
    seconds = self.total_seconds
    return self.total_flops / seconds if seconds > 0 else 0.0

  def summary(self) -> dict[str, float]:
    return {
        "steps": float(self.steps),
        "total_flops": self.total_flops,
        "total_seconds": self.total_seconds,
        "energy_joules": self.energy_joules,
        "flops_per_second": self.flops_per_second,
        "energy_kwh": self.energy_joules / 3.6e6,
    }
