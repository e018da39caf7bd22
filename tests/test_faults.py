"""Faults in real processes: SIGKILL mid-checkpoint, a full disk, a non-finite loss, a
corrupted checkpoint.

Each faulty run is the sinusoid experiment's entry point in its own process (through
``tests/fault_worker.py`` where a fault must be injected); each re-run is the user's
plain command, and must end bitwise equal to a run that was never interrupted.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One worker runs this module, so its module fixture runs once (pytest -n with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("faults")
FLAGS = ("--config=experiments/sinusoid/configs/maml.py:smoke",
         "--config.model.hidden=(16,16)", "--config.eval.num_tasks=20")
WORKER = os.path.join(ROOT, "tests", "fault_worker.py")


def experiment(workdir, env, *extra):
  return subprocess.run(
      [sys.executable, "-m", "experiments.sinusoid.main", *FLAGS, f"--workdir={workdir}",
       *extra], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def faulty(fault, step, workdir, env, *extra):
  return subprocess.run(
      [sys.executable, WORKER, fault, str(step), "--", *FLAGS, f"--workdir={workdir}",
       *extra], cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**env, "PYTHONPATH": ROOT})


def steps_saved(workdir):
  return sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit())


def final_state(workdir):
  path = workdir / "checkpoints" / str(max(steps_saved(workdir))) / "state"
  return ocp.StandardCheckpointer().restore(str(path))


def read_rows(path):
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def without_timings(row):
  """Drops what depends on the clock, or on how many steps this process trained."""
  return {k: v for k, v in row.items()
          if k not in ("steps_per_sec", "wall_clock_s", "compute")}


def assert_same_run(workdir, reference, *, metrics=True):
  """Same final state bit for bit, same results, and (if asked) the same metrics log.

  Logged metrics average the steps since the previous log line, so they match only when
  the resumed run restarted at a multiple of ``log_every``.
  """
  files = ("results.json", "metrics.jsonl") if metrics else ("results.json",)
  for name in files:
    read = read_rows if name.endswith(".jsonl") else lambda path: [json.load(open(path))]
    got, want = read(workdir / name), read(reference / name)
    assert [without_timings(r) for r in got] == [without_timings(r) for r in want], name
  got, want = leaves(final_state(workdir)), leaves(final_state(reference))
  assert len(got) == len(want)
  for a, b in zip(got, want, strict=True):
    np.testing.assert_array_equal(a, b)


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = experiment(workdir, env)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


def test_sigkill_while_saving_resumes_from_the_previous_checkpoint(
    tmp_path, user_env, uninterrupted):
  killed = faulty("kill_while_saving", 200, tmp_path, user_env)
  assert killed.returncode == -9, killed.stderr[-3000:]
  assert steps_saved(tmp_path) == [100]
  leftovers = [d for d in os.listdir(tmp_path / "checkpoints") if not d.isdigit()]
  assert any(d.startswith("200.") for d in leftovers), leftovers  # The half-saved one.

  resumed = experiment(tmp_path, user_env)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed from" in resumed.stderr and "checkpoints/100" in resumed.stderr
  assert steps_saved(tmp_path) == [100, 200, 300]
  assert_same_run(tmp_path, uninterrupted)


def test_full_disk_keeps_the_previous_checkpoint_and_says_so(
    tmp_path, user_env, uninterrupted):
  full = faulty("disk_full_after", 100, tmp_path, user_env, "--config.log_every=300")
  assert full.returncode != 0
  message = full.stderr  # Orbax's writer threads log their own tracebacks too.
  assert "Could not write the checkpoint of step 200" in message, message
  assert "The last complete checkpoint, step 100" in message and "is intact" in message
  assert "Free disk space" in message
  assert steps_saved(tmp_path) == [100]

  resumed = experiment(tmp_path, user_env, "--config.log_every=300")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  reference = experiment(tmp_path.parent / "reference", user_env,
                         "--config.log_every=300")
  assert reference.returncode == 0
  assert_same_run(tmp_path, tmp_path.parent / "reference", metrics=False)


def test_non_finite_loss_stops_the_process_and_names_the_step(tmp_path, user_env):
  result = experiment(tmp_path, user_env, "--config.outer_optimizer.learning_rate=1e12",
                      "--config.checkpoint_every=1", "--config.log_every=1")
  assert result.returncode != 0
  assert "Non-finite loss or gradient at step" in result.stderr
  bad = int(result.stderr.split("Non-finite loss or gradient at step ")[1].split()[0])
  saved = steps_saved(tmp_path)
  assert saved and max(saved) < bad
  params = final_state(tmp_path)["params"]
  assert all(np.isfinite(x).all() for x in leaves(params))


def test_corrupted_latest_checkpoint_falls_back_with_a_warning(
    tmp_path, user_env, uninterrupted):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted, workdir)
  for root, _, files in os.walk(workdir / "checkpoints" / "300" / "state"):
    for name in files:
      with open(os.path.join(root, name), "r+b") as f:
        f.truncate(max(os.path.getsize(os.path.join(root, name)) // 2, 1))
  resumed = experiment(workdir, user_env)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "checkpoints/300 is unreadable" in resumed.stderr
  assert "falling back to the previous checkpoint" in resumed.stderr
  assert "Resumed from" in resumed.stderr and "checkpoints/200" in resumed.stderr
  assert [d.split("-")[0] for d in os.listdir(workdir / "checkpoints_unreadable")] == ["300"]
  assert_same_run(workdir, uninterrupted)
