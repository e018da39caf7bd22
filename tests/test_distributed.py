"""Multi-host: two processes with 4 CPU devices each equal one process with 8."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from metalm.train import distributed

WORKER = pathlib.Path(__file__).with_name("multihost_worker.py")


def run_workers(num_processes: int, devices_per_process: int, user_env):
  with socket.socket() as s:  # A free port for the coordinator.
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  procs = []
  for pid in range(num_processes):
    env = {**user_env, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}"}
    if num_processes > 1:
      env.update({distributed.ENV_COORDINATOR: f"localhost:{port}",
                  distributed.ENV_NUM_PROCESSES: str(num_processes),
                  distributed.ENV_PROCESS_ID: str(pid)})
    procs.append(subprocess.Popen([sys.executable, str(WORKER)], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE))
  results = []
  for proc in procs:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    line = next(s for s in out.splitlines() if s.startswith("RESULT "))
    results.append(json.loads(line[len("RESULT "):]))
  return results


def test_two_processes_match_one(user_env):
  (single,) = run_workers(1, 8, user_env)
  multi = run_workers(2, 4, user_env)
  assert single["devices"] == 8 and all(r["devices"] == 8 for r in multi)
  assert sorted(r["process"] for r in multi) == [0, 1]
  for result in multi:
    for a, b in zip(single["params"], result["params"], strict=True):
      np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("environ,match", [
    ({distributed.ENV_COORDINATOR: "h:1"}, "missing"),
    ({distributed.ENV_COORDINATOR: "h:1", distributed.ENV_NUM_PROCESSES: "two",
      distributed.ENV_PROCESS_ID: "0"}, "integers"),
    ({distributed.ENV_COORDINATOR: "h:1", distributed.ENV_NUM_PROCESSES: "2",
      distributed.ENV_PROCESS_ID: "2"}, r"\[0, 2\)"),
])
def test_incomplete_environment_is_named(environ, match):
  with pytest.raises(ValueError, match=match):
    distributed.initialize_from_env(environ)


def test_no_environment_is_single_process():
  assert distributed.initialize_from_env({}) is False
  assert os.environ.get(distributed.ENV_COORDINATOR) is None
