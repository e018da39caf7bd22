"""XLA cost analysis counts 2*M*N*K per matmul; the meter accumulates exactly."""

import jax.numpy as jnp
import pytest

from metalm.tools import compute


def test_matmul_flops_equal_2mnk():
  m, k, n = 8, 16, 4
  a_MxK, b_KxN = jnp.ones((m, k)), jnp.ones((k, n))
  flops = compute.step_flops(lambda a, b: a @ b, a_MxK, b_KxN)
  assert flops == pytest.approx(2 * m * n * k, rel=0.01)
  assert compute.step_bytes(lambda a, b: a @ b, a_MxK, b_KxN) >= 4 * (m * k + k * n + m * n)
  costs = compute.cost_analysis(lambda a, b: a @ b, a_MxK, b_KxN)
  assert isinstance(costs, dict) and "flops" in costs


def test_meter_accumulates_and_estimates_energy():
  meter = compute.ComputeMeter(power_watts=100.0)
  (out, seconds) = compute.timed(lambda x: x * 2, jnp.ones(3))
  assert seconds >= 0.0 and float(out.sum()) == 6.0
  for flops, seconds in ((1e9, 0.5), (2e9, 1.0), (3e9, 0.5)):
    meter.record(flops, seconds)
  assert meter.steps == 3
  assert meter.step_flops == [1e9, 2e9, 3e9]
  assert meter.total_flops == 6e9
  assert meter.total_seconds == 2.0
  assert meter.energy_joules == 200.0
  assert meter.flops_per_second == 3e9
  assert meter.summary()["energy_kwh"] == pytest.approx(200.0 / 3.6e6)
  assert compute.ComputeMeter(power_watts=1.0).flops_per_second == 0.0
