"""Shared timing for the benchmark scripts: one JSON line per measurement.

Each measurement compiles the step ahead of time (compile seconds and the compiled
program's memory analysis are reported), runs one warm-up window, then times
``windows`` windows of ``steps`` calls and reports the median and spread of steps/s.
"""

import json
import os
import platform
import resource
import statistics
import time

import jax


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


def time_step(step, state, *args, windows: int, steps: int):
  """Compiles ``step(state, *args) -> (state, metrics)`` and times it.

  Returns:
    A dict with ``median``, ``min``, ``max`` steps/s, ``compile_s`` and
    ``step_memory_mb`` (from the compiled program's memory analysis).
  """
  start = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=0).lower(state, *args).compile()
  compile_s = time.perf_counter() - start
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
  return {
      "median": round(statistics.median(rates), 3),
      "min": round(min(rates), 3),
      "max": round(max(rates), 3),
      "windows": f"{windows} x {steps} steps",
      "compile_s": round(compile_s, 2),
      "step_memory_mb": compiled_memory_mb(compiled),
  }


def report(what: str, config: dict, timing: dict) -> None:
  """Prints one JSON line with the measurement, peak RSS and the machine."""
  print(json.dumps({
      "what": what, "config": config, **timing,
      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
      "machine": machine(),
  }), flush=True)
