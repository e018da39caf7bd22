"""The tool studies on MNIST end to end (``experiments.tools``), all in one smoke process."""

import glob
import json
import os
import subprocess
import sys

import pytest

from experiments.tools.configs import mnist as tools_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  # As conftest's ``data_dir`` fixture, which is per test; this run is shared.
  if not os.environ.get("METALM_DATA_DIR"):
    pytest.skip("METALM_DATA_DIR is unset: point it at the datasets directory.")
  workdir = tmp_path_factory.mktemp("tools")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run(
      [sys.executable, "-m", "experiments.tools.main",
       "--config=experiments/tools/configs/mnist.py:all,smoke", f"--workdir={workdir}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(workdir / "results.json") as f:
    return workdir, json.load(f)


def assert_pngs(workdir, names):
  for name in names:
    with open(workdir / name, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n", name


def test_classifier_learns(smoke_run):
  _, results = smoke_run
  assert results["classifier"]["test_accuracy"] > 0.85
  assert set(tools_config.STUDIES) <= set(results)


def test_explain_grid_and_ig_completeness(smoke_run):
  workdir, results = smoke_run
  explain = results["explain"]
  assert explain["methods"] == ["saliency", "gradient x input", "integrated gradients",
                                "SmoothGrad"]
  assert explain["ig_completeness"]["relative_error"] < 0.05
  assert os.path.getsize(workdir / "explain.png") > 20_000
  assert_pngs(workdir, explain["pngs"])


def test_robust_accuracy_never_exceeds_clean(smoke_run):
  workdir, results = smoke_run
  for model in ("standard", "adversarial_training"):
    accuracies = results["robustness"][model]
    clean = accuracies["clean_accuracy"]
    attacks = {k: v for k, v in accuracies.items() if k.startswith(("fgsm", "pgd"))}
    assert {"fgsm_linf_0.1", "pgd10_linf_0.1", "fgsm_l2_1", "pgd10_l2_1"} <= set(attacks)
    assert all(0.0 <= v <= clean + 1e-6 for v in attacks.values()), accuracies
  assert results["robustness"]["standard"]["clean_accuracy"] > 0.85
  assert_pngs(workdir, results["robustness"]["pngs"])


def test_compression_sizes_and_sparsities(smoke_run):
  workdir, results = smoke_run
  rows = {row["name"]: row for row in results["compression"]["rows"]}
  float32 = rows["float32"]
  assert rows["ptq_int8_weights"]["bytes"] < 0.3 * float32["bytes"]
  assert rows["ptq_int4_weights"]["bytes"] < 0.6 * rows["ptq_int8_weights"]["bytes"]
  assert rows["ptq_int8_weights"]["accuracy"] > float32["accuracy"] - 0.02
  assert rows["ptq_int8_weights_activations_minmax"]["accuracy"] > float32["accuracy"] - 0.03
  assert rows["qat_int4_weights"]["accuracy"] > 0.8
  for name in ("pruned_0.5", "pruned_0.9"):
    row = rows[name]
    assert row["sparsity"] == pytest.approx(row["requested_sparsity"], abs=1e-4)
  assert rows["pruned_0.9"]["bytes"] < rows["pruned_0.5"]["bytes"] < float32["bytes"]
  assert_pngs(workdir, results["compression"]["pngs"])


def test_distillation_and_domain_report_accuracies(smoke_run):
  workdir, results = smoke_run
  assert set(results["distillation"]["accuracy"]) == {"teacher", "student", "student_kd"}
  assert all(a > 0.5 for a in results["distillation"]["accuracy"].values())
  domain = results["domain"]["accuracy"]
  assert set(domain) == {"source_only", "dann"}
  assert domain["source_only"]["source_test"] > 0.85
  assert all(0.0 <= a <= 1.0 for splits in domain.values() for a in splits.values())
  assert_pngs(workdir, results["distillation"]["pngs"] + results["domain"]["pngs"])


def test_every_training_is_logged(smoke_run):
  workdir, _ = smoke_run
  with open(workdir / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  models = {row["model"] for row in rows}
  assert {"classifier", "adversarial", "teacher", "student", "student_kd", "source_only",
          "dann"} <= models
  assert all(row["step"] > 0 and row["loss"] == row["loss"] for row in rows)  # Not NaN.
  assert glob.glob(str(workdir / "tensorboard" / "events.out.tfevents.*"))
