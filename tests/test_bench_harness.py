"""bench/harness.py: the FLOP count, its rate and the fraction of the measured peak."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import pytest

HARNESS = pathlib.Path(__file__).resolve().parents[1] / "bench" / "harness.py"


@pytest.fixture(scope="module")
def harness():
  spec = importlib.util.spec_from_file_location("harness", HARNESS)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def matmul_step(state, b):
  return state @ b, {}


def test_step_flops_are_xlas_count_of_the_matmul(harness):
  a, b = jnp.ones((64, 32)), jnp.full((32, 32), 1 / 32)
  assert harness.lowered_flops(jax.jit(matmul_step).lower(a, b)) == 2 * 64 * 32 * 32
  timing = harness.time_step(matmul_step, a, b, windows=2, steps=3)
  assert timing["gflop_per_step"] == 2 * 64 * 32 * 32 / 1e9
  assert timing["gflop_per_s"] == pytest.approx(timing["median"] * 2 * 64 * 32 * 32 / 1e9,
                                                abs=0.01)
  assert "fraction_of_peak" not in timing


def test_fraction_of_peak_divides_by_the_measured_matmul_rate(harness):
  peak = harness.matmul_peak(size=256, windows=2)
  assert peak["matmul_peak_gflop_per_s"] > 0 and "256x256" in peak["matmul_peak_config"]
  a, b = jnp.ones((128, 128)), jnp.full((128, 128), 1 / 128)
  timing = harness.time_step(matmul_step, a, b, windows=2, steps=3, flops=1e9, peak=peak)
  assert timing["gflop_per_step"] == 1.0
  assert timing["gflop_per_s"] == round(timing["median"], 2)
  assert timing["fraction_of_peak"] == round(
      timing["gflop_per_s"] / peak["matmul_peak_gflop_per_s"], 3)


def test_programs_with_loops_get_no_flop_count(harness):
  """XLA counts a loop body once, so a scan of 5 matmuls would read as one."""
  def scanned(a, b):
    return jax.lax.scan(lambda c, _: (c @ b, None), a, None, length=5)[0]

  a, b = jnp.ones((16, 16)), jnp.eye(16)
  lowered = jax.jit(scanned).lower(a, b)
  assert harness.lowered_flops(lowered) is None
  # The body once, plus the loop counter.
  assert harness.lowered_flops(lowered, loops_run_once=True) == pytest.approx(2 * 16**3, abs=4)
