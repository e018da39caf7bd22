"""Smoke tests of bench/attention.py: every variant times and reports its memory.

Compiling dominates (several seconds a variant on a loaded 2-core machine), so the quick
tests split the variants: the attention functions alone (``--mode attention``), the
model-only variants (Transformer-XL memory, reversible layers) in the model, and (marked
slow) the attention functions inside the model.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
VARIANTS = {"full", "window", "favor", "lsh", "xl", "reversible"}


def run_bench(*flags):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  env.pop("XLA_FLAGS", None)  # one CPU device, as a user runs it
  out = subprocess.run([sys.executable, "bench/attention.py", "--quick", *flags], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def check_timed(record, length, measured):
  assert "skipped" not in record, record
  assert record["config"]["seq_len"] == length and measured in record["config"]["measured"]
  assert record["median"] > 0 and record["tokens_per_s"] > 0
  assert record["tokens_per_s"] == round(record["median"] * length, 1)
  assert record["step_memory_mb"] is not None and record["step_memory_mb"] > 0
  assert record["compile_s"] > 0 and record["machine"]


def test_model_only_variants_report_tokens_per_second_and_memory():
  records = run_bench("--lengths", "64", "--variants", "full,xl,reversible")
  assert [r["config"]["variant"] for r in records] == ["full", "xl", "reversible"]
  for r in records:
    check_timed(r, 64, "DecoderLM")
  assert records[1]["config"]["xl_segment"] == 32  # two segments: the scanned path runs
  assert records[2]["config"]["reversible"]


def test_attention_functions_alone_report_tokens_per_second_and_memory():
  records = run_bench("--lengths", "64", "--mode", "attention")
  by_variant = {r["config"]["variant"]: r for r in records}
  assert set(by_variant) == VARIANTS
  assert "model option" in by_variant.pop("reversible")["skipped"]
  for r in by_variant.values():
    check_timed(r, 64, "attention function alone")


def test_memory_cap_skips_instead_of_running(capsys, monkeypatch):
  monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts bench/ on the path
  spec = importlib.util.spec_from_file_location("bench_attention", REPO / "bench/attention.py")
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  # Estimates at L=64: full 2 x 64 x 64 x 4 B = 0.03 MB, FAVOR+ 64 x 2 x (16 + 64) x 4 B.
  assert bench.main(["--quick", "--lengths", "64", "--variants", "full,favor",
                     "--memory_cap_mb", "0.01"]) == 0
  records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [r["config"]["variant"] for r in records] == ["full", "favor"]
  assert [r["config"]["attention_estimate_mb"] for r in records] == [0.03, 0.04]
  assert all("memory_cap_mb" in r["skipped"] for r in records)


@pytest.mark.slow
def test_every_attention_function_runs_inside_the_model():
  """The attention functions the model-only test leaves out, inside the benchmark's model."""
  records = run_bench("--lengths", "64", "--variants", "window,favor,lsh")
  assert [r["config"]["variant"] for r in records] == ["window", "favor", "lsh"]
  for r in records:
    check_timed(r, 64, "DecoderLM")
