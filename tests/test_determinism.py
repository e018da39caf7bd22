"""Same seed, same result: across two runs, and across 1 and 8 (simulated) devices."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from metalm.train import sharding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One worker runs this module, so its module fixture runs once (pytest -n with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("determinism")
# 24 tasks per step, so that all 8 devices get 3 tasks each.
FLAGS = ("--config=experiments/sinusoid/configs/maml.py:smoke", "--config.num_steps=150",
         "--config.log_every=50", "--config.meta_batch_size=24",
         "--config.eval.num_tasks=50")
# A sharded step sums the meta-gradient over devices in another order than one device
# does; after 150 Adam steps the float32 results agree to this relative tolerance.
DEVICE_RTOL = 1e-5


def run(workdir, env):
  result = subprocess.run(
      [sys.executable, "-m", "experiments.sinusoid.main", *FLAGS, f"--workdir={workdir}"],
      cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(workdir / "metrics.jsonl") as f:
    # Timings vary; XLA's FLOP estimate is per device program, so it differs by mesh.
    metrics = [{k: v for k, v in json.loads(line).items()
                if k not in ("steps_per_sec", "total_flops")} for line in f]
  with open(workdir / "results.json") as f:
    results = json.load(f)
  return result.stderr, metrics, results["mse_after_steps"]


def numbers(tree):
  if isinstance(tree, dict):
    return [x for key in sorted(tree) for x in numbers(tree[key])]
  if isinstance(tree, list):
    return [x for item in tree for x in numbers(item)]
  return [float(tree)]


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  return run(tmp_path_factory.mktemp("one_device"), env)


def test_same_seed_same_metrics(tmp_path, user_env, one_device):
  _, metrics, mse = run(tmp_path, user_env)
  assert metrics == one_device[1]  # Bit for bit.
  assert mse == one_device[2]


def test_eight_devices_agree_with_one(tmp_path, user_env, one_device):
  env = {**user_env, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         sharding.ENV_MESH_DEVICES: "all"}
  log, metrics, mse = run(tmp_path, env)
  assert "24 tasks per step over 8 device(s)" in log
  assert "over 1 device(s)" in one_device[0]
  assert [m["step"] for m in metrics] == [m["step"] for m in one_device[1]]
  np.testing.assert_allclose(numbers(metrics), numbers(one_device[1]), rtol=DEVICE_RTOL)
  np.testing.assert_allclose(numbers(mse), numbers(one_device[2]), rtol=DEVICE_RTOL)


@pytest.mark.parametrize("value", ["none", "0", "9"])
def test_bad_device_count_is_named(monkeypatch, value):
  monkeypatch.setenv(sharding.ENV_MESH_DEVICES, value)
  with pytest.raises(ValueError, match=f"METALM_MESH_DEVICES='{value}'"):
    sharding.task_mesh(8)
