"""Every few-shot config runs its smoke variant on real Omniglot, and resumes."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments.fewshot.configs import base, maml
from metalm.eval import adapt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ["maml", "fomaml", "meta_sgd", "anil", "boil", "protonet", "r2d2", "metaoptnet",
           "cavia", "imaml", "maml_plus_plus"]


def run(config, workdir, env):
  return subprocess.run(
      [sys.executable, "-m", "experiments.fewshot.main",
       f"--config=experiments/fewshot/configs/{config}", f"--workdir={workdir}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600,
      env=env)


@pytest.mark.parametrize("name", CONFIGS)
def test_smoke_config_trains_evaluates_and_resumes(name, tmp_path, data_dir, user_env):
  env = {**user_env, "METALM_DATA_DIR": data_dir}
  first = run(f"{name}.py:5w1s,smoke", tmp_path, env)
  assert first.returncode == 0, first.stderr[-3000:]
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  method = {"metaoptnet": "metaoptnet_svm"}.get(name, name)
  assert results["method"] == method and results["step"] == 3
  assert results["norm"] == "transductive" and results["eval_split"] == "test"
  assert 0.0 <= results["accuracy"] <= 100.0 and results["ci95"] > 0.0
  assert_logs_and_plots(tmp_path)
  assert_accuracy_curve(tmp_path, results)
  if name == "maml":
    again = run(f"{name}.py:5w1s,smoke", tmp_path, env)
    assert again.returncode == 0 and "Resumed from" in again.stderr
  if name in ("maml", "protonet"):
    check_adapt_and_predict(tmp_path, ways=5 if name == "maml" else 3)


def assert_logs_and_plots(workdir):
  with open(workdir / "metrics.jsonl") as f:
    assert json.loads(f.readlines()[-1])["step"] == 3
  assert glob.glob(str(workdir / "tensorboard" / "events.out.tfevents.*"))
  for name in ("learning_curves.png", "accuracy.png"):
    with open(workdir / name, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def assert_accuracy_curve(workdir, results):
  """Meta-val at the smoke config's ``eval.every`` step, then the final test row."""
  with open(workdir / "evaluations.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert [(r["step"], r["split"]) for r in rows] == [(2, "val"), (3, "test")]
  assert rows[-1]["accuracy"] == results["accuracy"] and rows[-1]["ci95"] == results["ci95"]
  assert 0.0 <= rows[0]["accuracy"] <= 100.0 and rows[0]["ways"] == results["ways"]


def check_adapt_and_predict(workdir, ways):
  """The public path: a user's own support set, string labels, any N for heads."""
  trained = adapt.load(str(workdir), input_shape=(28, 28, 1))
  rng = np.random.default_rng(0)
  names = np.array([f"class_{i}" for i in range(ways)])
  support_x = rng.uniform(size=(2 * ways, 28, 28, 1)).astype(np.float32)
  support_y = np.repeat(names, 2)
  labels, probabilities = adapt.adapt_and_predict(
      trained, support_x, support_y, support_x[:4], inner_steps=1)
  assert probabilities.shape == (4, ways)
  np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
  assert set(labels) <= set(names)
  with pytest.raises(ValueError, match=r"query_x has shape \(4, 28, 28\)"):
    adapt.adapt_and_predict(trained, support_x, support_y, support_x[:4, ..., 0])
  with pytest.raises(ValueError, match=r"support_y has 3 labels along axis 0"):
    adapt.adapt_and_predict(trained, support_x, support_y[:3], support_x[:4])
  if trained.config.model.num_classes:
    with pytest.raises(ValueError, match=r"meta-trained for 5-way tasks"):
      adapt.adapt_and_predict(trained, support_x[:6], support_y[:6], support_x[:4])


def test_config_arguments_are_checked():
  assert base.parse("20w5s,smoke") == (20, 5, True)
  assert maml.get_config("20w1s").method.inner_steps == 5
  with pytest.raises(ValueError, match=r"Bad config argument '5w2s'"):
    base.parse("5w2s")


def write_mini_imagenet(root, per_class=3):
  """The pickle layout of mini-ImageNet with every Ravi class and a few random images."""
  import pickle

  from metalm.data import mini_imagenet
  root.mkdir()
  rng = np.random.default_rng(0)
  for split, wnids in mini_imagenet.RAVI_CLASSES.items():
    data = rng.integers(0, 256, (len(wnids) * per_class, 84, 84, 3), dtype=np.uint8)
    class_dict = {w: list(range(c * per_class, (c + 1) * per_class))
                  for c, w in enumerate(wnids)}
    with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
      pickle.dump({"image_data": data, "class_dict": class_dict}, f, protocol=4)
  return root


def test_mini_imagenet_row_runs_on_files_of_the_right_layout(tmp_path, user_env):
  data = write_mini_imagenet(tmp_path / "mini_imagenet")
  workdir = tmp_path / "run"
  result = subprocess.run(
      [sys.executable, "-m", "experiments.fewshot.main",
       "--config=experiments/fewshot/configs/mini_imagenet.py:maml,5w1s,smoke",
       f"--config.data.data_dir={data}", f"--workdir={workdir}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, env=user_env)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(workdir / "results.json") as f:
    results = json.load(f)
  assert results["dataset"] == "mini_imagenet" and results["split"] == "ravi"
  assert results["config"]["model"]["filters"] == 8  # smoke shrinks Conv-4.


def test_mini_imagenet_rows_name_their_method():
  from experiments.fewshot.configs import mini_imagenet
  with pytest.raises(ValueError, match="name one method"):
    mini_imagenet.get_config("5w1s")
  with pytest.raises(ValueError, match="5-way"):
    mini_imagenet.get_config("maml,20w1s")
