"""Multitask experiments end to end, and the multitask trainer's exact resume.

Every config's ``:smoke`` runs as a user runs it (a subprocess), writes results and a
checkpoint, and a re-run continues from that checkpoint. Multi-MNIST and CoNLL-2000
read the real files under ``$METALM_DATA_DIR``; NYUv2, Cityscapes and QM9 read small
generated copies of their layouts.
"""

import glob
import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from experiments.multitask.benchmarks import common
from experiments.multitask.configs import base as config_base
from experiments.multitask.configs import multi_mnist as multi_mnist_config
from metalm import losses, mtl
from metalm.data import multitask as multitask_data
from metalm.mtl import base
from metalm.train import multitask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(config, workdir, env, *extra):
  return subprocess.run(
      [sys.executable, "-m", "experiments.multitask.main",
       f"--config=experiments/multitask/configs/{config}", f"--workdir={workdir}", *extra],
      cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)


def saved_params(workdir, step):
  """The params of checkpoint ``step`` as numpy arrays."""
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  return state.state["params"]


def assert_trees_bitwise_equal(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b, strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


# --- Generated copies of the data sets that are not provided ------------------------------


def _save(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  np.save(path, array)


def _write_dense(root, shape, num_classes, label_folder, normal):
  rng = np.random.default_rng(0)
  h, w = shape
  for split, n in (("train", 3), ("val", 2)):
    for i in range(n):
      fields = {"image": rng.uniform(size=(h, w, 3)).astype(np.float32),
                label_folder: rng.integers(-1, num_classes, (h, w)).astype(np.float32),
                "depth": rng.uniform(0.5, 10, (h, w, 1)).astype(np.float32)}
      if normal:
        vectors = rng.normal(size=(h, w, 3)).astype(np.float32)
        fields["normal"] = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
      for folder, array in fields.items():
        _save(root / split / folder / f"{i}.npy", array)


def _write_qm9(root):
  rng = np.random.default_rng(0)
  atoms = np.array([3, 29, 1, 5, 2, 4, 7, 6, 9, 3])
  edges = []
  for count in atoms:
    chain = np.stack([np.arange(count - 1), np.arange(1, count)])
    edges.append(np.concatenate([chain, chain[::-1]], axis=1))
  num_edges = np.array([e.shape[1] for e in edges])
  a = int(atoms.sum())
  root.mkdir(parents=True)
  np.savez(root / "qm9.npz", num_atoms=atoms, num_edges=num_edges,
           x=rng.normal(size=(a, 11)).astype(np.float32), z=rng.choice([1, 6, 7, 8], a),
           pos=rng.normal(size=(a, 3)).astype(np.float32),
           edge_index=np.concatenate(edges, axis=1),
           edge_attr=np.eye(4, dtype=np.float32)[rng.integers(0, 4, num_edges.sum())],
           y=rng.normal(size=(len(atoms), 19)).astype(np.float32))


@pytest.fixture(scope="module")
def generated_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("generated")
  _write_dense(root / "nyuv2", (288, 384), 13, "label", normal=True)
  _write_dense(root / "cityscapes", (128, 256), 7, "label_7", normal=False)
  _write_qm9(root / "qm9")
  return root


# --- End to end ----------------------------------------------------------------------------


def test_multi_mnist_smoke_resumes_to_the_same_params(tmp_path, data_dir, user_env):
  env = {**user_env, "METALM_DATA_DIR": data_dir}
  straight = run("multi_mnist.py:pcgrad,smoke", tmp_path / "straight", env)
  assert straight.returncode == 0, straight.stderr[-3000:]
  done = results(tmp_path / "straight")
  assert done["balancer"] == "pcgrad" and done["step"] == 4 and "delta_m" not in done
  assert set(done["scores"]) == {"left", "right"}
  assert all(0 <= s["accuracy"] <= 100 for s in done["scores"].values())
  assert "steps/s" in straight.stderr and "ETA" in straight.stderr
  assert_logs_and_plots(tmp_path / "straight", last_step=4)

  first = run("multi_mnist.py:pcgrad,smoke", tmp_path / "resumed", env, "--config.num_steps=2")
  assert first.returncode == 0, first.stderr[-3000:]
  again = run("multi_mnist.py:pcgrad,smoke", tmp_path / "resumed", env)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resumed from" in again.stderr and "training from step 2 to 4" in again.stderr
  assert_trees_bitwise_equal(saved_params(tmp_path / "resumed", 4),
                             saved_params(tmp_path / "straight", 4))
  assert results(tmp_path / "resumed")["scores"] == done["scores"]


@pytest.mark.parametrize("config,flags,tasks", [
    ("multi_fashion.py:famo,smoke", (), {"left", "right"}),
    # A single-task baseline run: one head, one loss.
    ("multi_fashion_mnist.py:nash_mtl,smoke", ("--config.data.tasks=right",), {"right"})])
def test_multi_fashion_smoke(config, flags, tasks, tmp_path, data_dir, user_env):
  done = run(config, tmp_path, {**user_env, "METALM_DATA_DIR": data_dir}, *flags)
  assert done.returncode == 0, done.stderr[-3000:]
  assert results(tmp_path)["step"] == 4 and os.path.isdir(tmp_path / "checkpoints" / "4")
  assert set(results(tmp_path)["scores"]) == tasks
  assert results(tmp_path)["higher_is_better"] == {t: {"accuracy": True} for t in tasks}
  assert set(saved_params(tmp_path, 4)[base.TASK_KEY]) == tasks


def test_task_names_are_checked():
  assert common.task_names("left, right", ("left", "right"), "f") == ("left", "right")
  for bad in ("", "left,left", "middle"):
    with pytest.raises(ValueError, match=r"config.data.tasks=.*subset of \['left', 'right'\]"):
      common.task_names(bad, ("left", "right"), "config.data.tasks")


def check_smoke_and_resume(config, workdir, env, tasks):
  first = run(config, workdir, env)
  assert first.returncode == 0, first.stderr[-3000:]
  done = results(workdir)
  assert done["step"] == 4 and set(done["scores"]) == set(tasks)
  assert os.path.isdir(workdir / "checkpoints" / "4")
  longer = run(config, workdir, env, "--config.num_steps=6")
  assert longer.returncode == 0, longer.stderr[-3000:]
  assert "Resumed from" in longer.stderr and "training from step 4 to 6" in longer.stderr
  assert results(workdir)["step"] == 6
  assert_logs_and_plots(workdir, last_step=6)
  return results(workdir)


def assert_logs_and_plots(workdir, last_step):
  with open(workdir / "metrics.jsonl") as f:
    assert json.loads(f.readlines()[-1])["step"] == last_step
  assert glob.glob(str(workdir / "tensorboard" / "events.out.tfevents.*"))
  with open(workdir / "learning_curves.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_conll2000_smoke(tmp_path, data_dir, user_env):
  done = check_smoke_and_resume("conll2000.py:mgda,smoke", tmp_path,
                                {**user_env, "METALM_DATA_DIR": data_dir}, ("pos", "chunk"))
  assert set(done["scores"]["chunk"]) == {"f1", "accuracy"}
  assert 0 <= done["scores"]["chunk"]["f1"] <= 100


def test_conll2000_transformer_smoke(tmp_path, data_dir, user_env):
  done = run("conll2000.py:pcgrad,transformer,smoke", tmp_path,
             {**user_env, "METALM_DATA_DIR": data_dir},
             "--config.model.attention.name=window")
  assert done.returncode == 0, done.stderr[-3000:]
  done = results(tmp_path)
  assert done["config"]["model"]["trunk"] == "transformer" and done["step"] == 4
  assert 0 <= done["scores"]["chunk"]["f1"] <= 100
  assert 0 <= done["scores"]["pos"]["accuracy"] <= 100


def test_sentence_tasks_smoke(tmp_path, data_dir, user_env):
  done = check_smoke_and_resume("sentences.py:famo,smoke", tmp_path,
                                {**user_env, "METALM_DATA_DIR": data_dir},
                                ("trec", "polarity", "subjectivity"))
  assert all(0 <= s["accuracy"] <= 100 for s in done["scores"].values())


def test_sentence_tasks_one_task_and_delta_m(tmp_path, data_dir, user_env):
  """A subset of the tasks trains alone (the single-task baseline runs); delta_m is over
  the tasks trained, against the baselines the config carries."""
  done = run("sentences.py:smoke", tmp_path, {**user_env, "METALM_DATA_DIR": data_dir},
             "--config.data.tasks=polarity")
  assert done.returncode == 0, done.stderr[-3000:]
  done = results(tmp_path)
  assert set(done["scores"]) == set(done["baselines"]) == {"polarity"}
  score, baseline = done["scores"]["polarity"]["accuracy"], done["baselines"]["polarity"]
  np.testing.assert_allclose(done["delta_m"], -100 * (score - baseline["accuracy"])
                             / baseline["accuracy"], rtol=1e-6)


@pytest.mark.parametrize("name,tasks", [
    ("nyuv2", ("segmentation", "depth", "normal")),
    ("cityscapes", ("segmentation", "depth")),
    ("qm9", ("mu", "alpha", "homo", "lumo", "r2", "zpve", "U0", "U", "H", "G", "cv"))])
def test_generated_data_smoke(name, tasks, tmp_path, generated_dir, user_env):
  env = {**user_env, "METALM_DATA_DIR": str(generated_dir)}
  done = check_smoke_and_resume(f"{name}.py:cagrad,smoke", tmp_path, env, tasks)
  # delta_m against the paper's single-task baselines, which the config carries.
  assert np.isfinite(done["delta_m"]) and set(done["baselines"]) == set(tasks)
  if name == "nyuv2":
    assert set(done["scores"]["normal"]) >= {"angle_mean", "angle_median", "within_30"}


def test_unknown_balancer_lists_the_valid_ones(tmp_path, user_env):
  failed = run("multi_mnist.py:smoke", tmp_path, user_env, "--config.balancer.name=nope")
  assert failed.returncode != 0
  assert "Unknown balancer 'nope'" in failed.stderr and "nash_mtl" in failed.stderr
  with pytest.raises(ValueError, match=r"Unknown balancer .*'pcgradd'.*Did you mean "
                     r"'pcgrad'.*nash_mtl"):
    multi_mnist_config.get_config("pcgradd,smoke")
  config = multi_mnist_config.get_config("smoke")
  config.balancer.name = "nope"  # As --config.balancer.name=nope would.
  with pytest.raises(ValueError, match=r"Unknown balancer 'nope'.*Choose one of: "
                     r"aligned_mtl, cagrad, .*upgrad"):
    mtl.build(config.balancer)
  assert config_base.parse("smoke,nash_mtl") == ("nash_mtl", True, set())


# --- The trainer in process: exact resume, signals, non-finite steps -------------------------

D, H, N = 3, 4, 64


def toy_setup(balancer_name, **config_overrides):
  """A shared tanh layer, a linear head per task, an ArrayBatcher over fixed data."""
  tasks = ("a", "b")

  def init(key):
    keys = jax.random.split(key, 3)
    return {"shared": {"w": 0.5 * jax.random.normal(keys[0], (D, H))},
            base.TASK_KEY: {t: {"v": 0.5 * jax.random.normal(k, (H, 1))}
                            for t, k in zip(tasks, keys[1:], strict=True)}}, {}

  def encode(params, state, x, *, train, key=None):
    return jnp.tanh(x @ params["shared"]["w"]), state

  def decode(params, state, rep, *, train, key=None):
    return {t: rep @ params[base.TASK_KEY][t]["v"] for t in tasks}, state

  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, D)).astype(np.float32)
  y = {t: np.tanh(x @ rng.normal(size=(D, 1))).astype(np.float32) for t in tasks}
  config = ml_collections.ConfigDict(dict(
      seed=0, num_steps=12, batch_size=8, log_every=3, checkpoint_every=5,
      max_checkpoints=3, balancer=dict(name=balancer_name), learning_rate=0.1))
  config.update(config_overrides)
  kwargs = dict(model=base.MultiTaskModel(init, encode, decode, tasks),
                balancer=mtl.build(config.balancer), tx=optax.adam(config.learning_rate),
                loss_fns={t: losses.mse for t in tasks},
                batcher=multitask_data.batcher(x, y, seed=0))
  return config, kwargs


def interrupt_at(step_to_stop):
  def hook(step, state):
    del state
    if step == step_to_stop:
      signal.raise_signal(signal.SIGTERM)
  return hook


@pytest.mark.parametrize("balancer,rep_grad", [("db_mtl", False), ("rlw", False),
                                               ("nash_mtl", False), ("mgda", True)])
def test_trainer_resumes_bitwise_after_a_signal(balancer, rep_grad, tmp_path):
  config, kwargs = toy_setup(balancer)
  kwargs["rep_grad"] = rep_grad  # MGDA-UB: per-task gradients at the representation.
  straight = multitask.train(config, str(tmp_path / "straight"), **kwargs)
  with pytest.raises(SystemExit) as exit_info:
    multitask.train(config, str(tmp_path / "cut"), hooks=[interrupt_at(7)], **kwargs)
  assert exit_info.value.code == 128 + signal.SIGTERM
  resumed = multitask.train(config, str(tmp_path / "cut"), **kwargs)
  assert int(resumed.step) == 12
  assert_trees_bitwise_equal(resumed, straight)
  with open(tmp_path / "cut" / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == [3, 6, 9, 12]
  assert {"loss/a", "loss/b", "a/mse", "steps_per_sec"} <= set(rows[-1])


def test_trainer_stops_on_a_non_finite_step(tmp_path):
  config, kwargs = toy_setup("equal_weighting", learning_rate=1e30, checkpoint_every=1)
  with pytest.raises(FloatingPointError, match=r"Non-finite loss or gradient at step \d+"):
    multitask.train(config, str(tmp_path), **kwargs)


def test_batcher_is_a_function_of_seed_and_step():
  x = np.arange(10)
  batcher = multitask_data.batcher(x, {"t": x * 2}, seed=3)
  epoch = np.concatenate([batcher.batch(k, 3).x for k in range(3)])
  assert len(set(epoch.tolist())) == 9  # One epoch: 3 batches, no repeats, 1 dropped.
  np.testing.assert_array_equal(batcher.batch(4, 3).x, batcher.batch(4, 3).x)
  np.testing.assert_array_equal(batcher.batch(4, 3).y["t"], 2 * batcher.batch(4, 3).x)
  assert not np.array_equal(batcher.batch(0, 9).x, batcher.batch(1, 9).x)
  with pytest.raises(ValueError, match="same number of examples"):
    multitask_data.batcher(x, {"t": x[:5]}, seed=0)


def test_joint_batcher_draws_every_task_from_its_own_epochs():
  x = {"a": np.arange(10)[:, None], "b": 100 + np.arange(7)[:, None]}
  y = {"a": np.arange(10) * 2, "b": np.arange(7) * 3}
  batcher = multitask_data.joint_batcher(x, y, seed=1)
  batch = batcher.batch(0, 3)
  assert batch.x.shape == (3, 2, 1)
  np.testing.assert_array_equal(batch.y["a"], 2 * batch.x[:, 0, 0])
  np.testing.assert_array_equal(batch.y["b"], 3 * (batch.x[:, 1, 0] - 100))
  # Task b (7 examples, 2 batches of 3 per epoch) starts its second epoch at step 2.
  epoch_b = np.concatenate([batcher.batch(k, 3).x[:, 1, 0] for k in range(2)])
  assert len(set(epoch_b.tolist())) == 6
  epoch_a = np.concatenate([batcher.batch(k, 3).x[:, 0, 0] for k in range(3)])
  assert len(set(epoch_a.tolist())) == 9
  np.testing.assert_array_equal(batcher.batch(5, 3).x, batcher.batch(5, 3).x)
  with pytest.raises(ValueError, match="'b' has 7 inputs but 6 targets"):
    multitask_data.joint_batcher(x, {**y, "b": y["b"][:6]}, seed=0)
  with pytest.raises(ValueError, match="one shape per example"):
    multitask_data.joint_batcher({**x, "b": np.zeros((7, 2))}, y, seed=0)
