"""bench/suite.py: runs the chosen parts, keeps every JSON line, refuses unknown parts."""

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_script(script, *flags):
  """Runs ``bench/<script>`` as a user does: from the repository, on one CPU device."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, f"bench/{script}", *flags], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)


def test_sinusoid_part_writes_both_orders(tmp_path):
  out = tmp_path / "suite.jsonl"
  proc = run_script("suite.py", "--parts", "sinusoid", "--quick", "--out", str(out))
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [json.loads(line) for line in out.read_text().splitlines()]
  assert [line["what"] for line in lines] == ["sinusoid maml meta-steps/s",
                                              "sinusoid fomaml meta-steps/s"]
  for line in lines:
    assert line["suite_part"] == "sinusoid" and line["median"] > 0
    assert line["gflop_per_s"] > 0 and line["load_1min_at_start"] >= 0
  assert len(proc.stdout.splitlines()) == 2 and "GFLOP/s" in proc.stdout


def test_unknown_part_is_refused(tmp_path):
  proc = run_script("suite.py", "--parts", "sinusoid,convnets", "--out",
                    str(tmp_path / "x.jsonl"))
  assert proc.returncode != 0 and "Unknown --parts ['convnets']" in proc.stderr
  assert not (tmp_path / "x.jsonl").exists()


def test_conv_layer_times_every_formulation_and_pass_on_one_flop_count():
  proc = run_script("conv_layer.py", "--tasks", "2", "--images", "3", "--size", "6",
                    "--channels", "4", "--windows", "1", "--steps", "1")
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [json.loads(line) for line in proc.stdout.splitlines()]
  assert {(line["config"]["impl"], line["what"].split(" calls")[0]) for line in lines} == {
      (impl, f"conv layer {p}") for impl in ("xla", "im2col", "winograd")
      for p in ("forward", "input gradient", "kernel gradient")}
  # Each pass is credited the direct convolution's FLOPs, whatever the formulation.
  for p in ("forward", "input gradient", "kernel gradient"):
    counts = {line["gflop_per_step"] for line in lines if p in line["what"]}
    assert len(counts) == 1 and counts.pop() > 0
  assert all(line["median"] > 0 and "fraction_of_peak" in line for line in lines)
