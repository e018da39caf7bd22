"""The sinusoid experiment end to end, as a user runs it."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = "--config=experiments/sinusoid/configs/maml.py:smoke"


def command(workdir, *extra):
  return [sys.executable, "-m", "experiments.sinusoid.main", SMOKE,
          f"--workdir={workdir}", *extra]


def run(workdir, env, *extra):
  return subprocess.run(command(workdir, *extra), cwd=ROOT, capture_output=True,
                        text=True, timeout=300, env=env)


def test_smoke_run_trains_evaluates_plots_and_resumes(tmp_path, user_env):
  first = run(tmp_path, user_env)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "steps/s" in first.stderr and "ETA" in first.stderr
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["norm"] == "none" and results["step"] == 300
  assert set(results["mse_after_steps"]) == {"0", "1", "10"}
  assert os.path.getsize(tmp_path / "adaptation.png") > 10_000
  assert os.path.isdir(tmp_path / "checkpoints" / "300")
  assert "[####################] 100%" in first.stderr
  assert_logs_and_plots(tmp_path)

  again = run(tmp_path, user_env)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resumed from" in again.stderr and "step 100/" not in again.stderr
  with open(tmp_path / "results.json") as f:
    assert json.load(f)["mse_after_steps"] == results["mse_after_steps"]
  assert_logs_and_plots(tmp_path)


def assert_logs_and_plots(workdir):
  """metrics.jsonl, TensorBoard scalars and plot images, learning curves and MSE +- CI."""
  from tensorboard.backend.event_processing import event_accumulator
  with open(workdir / "metrics.jsonl") as f:
    assert [json.loads(line)["step"] for line in f] == [100, 200, 300]
  assert glob.glob(str(workdir / "tensorboard" / "events.out.tfevents.*"))
  for name in ("learning_curves.png", "accuracy.png"):
    with open(workdir / name, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  events = event_accumulator.EventAccumulator(str(workdir / "tensorboard")).Reload()
  assert [e.step for e in events.Scalars("loss")] == [100, 200, 300]
  assert {"learning_curves", "accuracy", "adaptation"} <= set(events.Tags()["images"])


def test_unknown_command_line_field_is_named(tmp_path, user_env):
  result = run(tmp_path, user_env, "--config.inner_step=3")
  assert result.returncode != 0
  assert "inner_step" in result.stderr and "inner_steps" in result.stderr


def test_sigterm_writes_a_checkpoint_before_exit(tmp_path, user_env):
  proc = subprocess.Popen(
      command(tmp_path, "--config.num_steps=1000000", "--config.log_every=50"),
      cwd=ROOT, stderr=subprocess.PIPE, text=True, env=user_env)
  deadline = time.time() + 240
  for line in proc.stderr:
    if "steps/s" in line or time.time() > deadline:
      break
  proc.send_signal(signal.SIGTERM)
  _, rest = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, rest[-3000:]
  assert "Re-run the same command to resume" in rest
  steps = [int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()]
  if not steps:
    pytest.fail("no checkpoint was written on SIGTERM")
  assert max(steps) >= 50
