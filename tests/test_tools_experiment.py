"""The tool studies on MNIST end to end (``experiments.tools``), all in one smoke process."""

import glob
import json
import os
import subprocess
import sys

import pytest

from experiments.tools.configs import mnist as tools_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One worker runs this module, so its module fixture runs once (pytest -n with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("tools_experiment")


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
    assert os.path.getsize(workdir / name) > 0, name
    with open(workdir / name, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n", name


def assert_percent(result):
  assert 0.0 <= result["accuracy"] <= 100.0 and result["ci95"] >= 0.0, result


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
          "dann", "maml_digits", "text_transformer", "teacher_mnist", "teacher_fashion_mnist",
          "student_multi_kd", "student_multi_labels", "float32_finetuned",
          "domain_meta"} <= models
  assert all(row["step"] > 0 and row["loss"] == row["loss"] for row in rows)  # Not NaN.
  assert glob.glob(str(workdir / "tensorboard" / "events.out.tfevents.*"))


def test_adapted_saliency_and_attention_maps(smoke_run):
  workdir, results = smoke_run
  explain = results["explain"]
  adapted = explain["adapted_saliency"]
  assert adapted["pngs"] == ["adapted_saliency.png"]
  assert set(adapted["train_digits"]).isdisjoint(adapted["test_digits"])
  assert_percent(adapted["heldout_accuracy"])
  task = adapted["explained_task"]
  assert 0.0 <= task["query_accuracy_before"] <= 100.0
  assert 0.0 <= task["query_accuracy_after"] <= 100.0
  assert task["saliency_change"] > 0.0  # Adaptation changed what the model looks at.
  attention = explain["attention_maps"]
  if "skipped" in attention:  # No CLINC150 in the data dir.
    pytest.skip(attention["skipped"])
  assert attention["pngs"] == ["attention_maps.png"]
  assert 0.0 <= attention["test_accuracy"] <= 1.0
  assert len(attention["map_shapes"]) == attention["depth"]
  for shape in attention["map_shapes"]:
    assert shape == [1, attention["num_heads"], attention["tokens"], attention["tokens"]]
  assert attention["row_sums_max_error"] < 1e-4
  assert {"explain.png", "adapted_saliency.png", "attention_maps.png"} <= set(explain["pngs"])
  assert_pngs(workdir, explain["pngs"])


def test_multi_teacher_student_has_an_accuracy_per_task(smoke_run):
  workdir, results = smoke_run
  multi = results["distillation"]["multi_teacher"]
  if "skipped" in multi:
    pytest.skip(multi["skipped"])
  tasks = set(multi["tasks"])
  assert len(tasks) >= 2
  for model in ("teachers", "student_multi_kd", "student_multi_labels"):
    assert set(multi["accuracy"][model]) == tasks, model
    assert all(0.0 <= a <= 1.0 for a in multi["accuracy"][model].values())
  assert all(a > 0.5 for a in multi["accuracy"]["teachers"].values())
  assert_pngs(workdir, multi["pngs"])


def test_float32_fine_tuned_as_long_as_qat_and_pruning(smoke_run):
  _, results = smoke_run
  config = results["config"]["compression"]
  rows = {row["name"]: row for row in results["compression"]["rows"]}
  tuned = rows["float32_finetuned"]
  assert tuned["steps"] == max(config["qat_steps"], config["finetune_steps"])
  assert tuned["steps"] == rows["qat_int4_weights"]["steps"] == rows["pruned_0.5"]["steps"]
  assert 0.85 < tuned["accuracy"] <= 1.0
  assert tuned["bytes"] == rows["float32"]["bytes"]


def test_domain_meta_holds_out_angles(smoke_run):
  workdir, results = smoke_run
  meta = results["domain_meta"]
  assert meta["heldout_angles"] and meta["train_angles"]
  assert set(meta["heldout_angles"]).isdisjoint(meta["train_angles"])
  accuracy = meta["accuracy_percent"]
  assert set(accuracy["meta_trained"]) == (
      {f"train_{a:g}" for a in meta["train_angles"]}
      | {f"heldout_{a:g}" for a in meta["heldout_angles"]})
  assert set(accuracy["no_meta_training"]) == {f"heldout_{a:g}" for a in meta["heldout_angles"]}
  for per_angle in accuracy.values():
    for result in per_angle.values():
      assert_percent(result)
      assert result["episodes"] == meta["eval_episodes"]
  assert_pngs(workdir, meta["pngs"])


def test_domain_meta_rejects_overlapping_angles():
  config = tools_config.get_config("domain_meta,smoke")
  config.domain_meta.heldout_angles = (30.0,)
  from experiments.tools import domain_meta
  with pytest.raises(ValueError, match="also training angles"):
    domain_meta.run(config, "unused")
