"""Shared timing for the benchmark scripts: one JSON line per measurement.

Each measurement compiles the step ahead of time (compile seconds and the compiled
program's memory analysis are reported), runs one warm-up window, then times
``windows`` windows of ``steps`` calls and reports the median and spread of steps/s.
Where the step's FLOPs are known (XLA's count for a lowered program without loops, or
the caller's), ``gflop_per_s`` comes with the figure, and, given the device's measured
matrix-multiply rate (``matmul_peak``), ``fraction_of_peak``.
"""

import json
import os
import platform
import resource
import statistics
import time

import jax
import jax.numpy as jnp


def machine() -> str:
  cpus = os.cpu_count()
  device = jax.devices()[0]
  return (f"{platform.processor() or platform.machine()}, {cpus} CPU cores, "
          f"{jax.device_count()} x {device.device_kind}, jax {jax.__version__}")


def compiled_memory_mb(compiled) -> float | None:
  """Peak device memory the compiled step needs: arguments + outputs + temporaries."""
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  total = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
           + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)
  return round(total / 2**20, 1)


def lowered_flops(lowered, loops_run_once: bool = False) -> float | None:
  """FLOPs XLA's cost analysis counts in a lowered program, or None.

  The analysis counts a loop's body once whatever its trip count, so a program with a
  loop (a ``scan``, ``lax.map``, a solver's ``while``) gets None unless the caller
  knows each loop runs once (``loops_run_once``).
  """
  if not loops_run_once and "stablehlo.while" in lowered.as_text():
    return None
  flops = (lowered.cost_analysis() or {}).get("flops")
  return float(flops) if flops else None


def matmul_peak(size: int | None = None, windows: int = 5) -> dict:
  """The default device's float32 matrix-multiply rate: the practical peak to compare with.

  A chain of ``size x size`` products (2048 on CPU, 8192 on accelerators) at the
  backend's default precision, the precision the benchmarked steps use; the median of
  ``windows`` timed windows after one warm-up.
  """
  size = size or (2048 if jax.default_backend() == "cpu" else 8192)
  repeats = 4

  @jax.jit
  def chain(a, b):
    for _ in range(repeats):
      a = (a @ b) * size**-0.5  # Keeps the values near unit scale.
    return a

  a = jnp.ones((size, size), jnp.float32)
  b = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  chain(a, b).block_until_ready()
  rates = []
  for _ in range(windows):
    start = time.perf_counter()
    chain(a, b).block_until_ready()
    rates.append(2 * size**3 * repeats / (time.perf_counter() - start) / 1e9)
  return {"matmul_peak_gflop_per_s": round(statistics.median(rates), 1),
          "matmul_peak_config": f"float32 {size}x{size} @ {size}x{size}, default precision"}


def time_step(step, state, *args, windows: int, steps: int, flops: float | None = None,
              peak: dict | None = None):
  """Compiles ``step(state, *args) -> (state, metrics)`` and times it.

  Args:
    flops: FLOPs of one step; by default XLA's count for the lowered ``step`` when it
      has no loop (``lowered_flops``).
    peak: ``matmul_peak()``'s result, to report the step's fraction of it.

  Returns:
    A dict with ``median``, ``min``, ``max`` steps/s, ``compile_s``, ``step_memory_mb``
    (from the compiled program's memory analysis) and, where FLOPs are known,
    ``gflop_per_step``, ``gflop_per_s`` (at the median) and ``fraction_of_peak``.
  """
  start = time.perf_counter()
  lowered = jax.jit(step, donate_argnums=0).lower(state, *args)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  flops = flops or lowered_flops(lowered)
  for _ in range(steps):  # Warm-up window.
    state, _ = compiled(state, *args)
  jax.block_until_ready(state)
  rates = []
  for _ in range(windows):
    start = time.perf_counter()
    for _ in range(steps):
      state, _ = compiled(state, *args)
    jax.block_until_ready(state)
    rates.append(steps / (time.perf_counter() - start))
  median = statistics.median(rates)
  timing = {
      "median": round(median, 3),
      "min": round(min(rates), 3),
      "max": round(max(rates), 3),
      "windows": f"{windows} x {steps} steps",
      "compile_s": round(compile_s, 2),
      "step_memory_mb": compiled_memory_mb(compiled),
  }
  if flops:
    timing["gflop_per_step"] = float(f"{flops / 1e9:.6g}")
    timing["gflop_per_s"] = round(median * flops / 1e9, 2)
    if peak:
      timing.update(peak)
      timing["fraction_of_peak"] = round(timing["gflop_per_s"]
                                         / peak["matmul_peak_gflop_per_s"], 3)
  return timing


def report(what: str, config: dict, timing: dict) -> None:
  """Prints one JSON line with the measurement, peak RSS and the machine."""
  print(json.dumps({
      "what": what, "config": config, **timing,
      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
      "machine": machine(),
  }), flush=True)
