"""Training loop: exact resume, signals, non-finite losses, config mismatches."""

import json
import os
import signal

import jax
import ml_collections
import numpy as np
import optax
import pytest

from experiments.sinusoid import main as sinusoid_main
from experiments.sinusoid.configs import maml as maml_config
from metalm import losses, meta, models
from metalm.data import episodic, sinusoid
from metalm.meta import base
from metalm.train import checkpoint, loop, optim


def smoke_config(**overrides):
  config = maml_config.get_config("smoke")
  config.num_steps = 24
  config.log_every = 4
  config.checkpoint_every = 10
  config.model.hidden = (16, 16)
  config.update(overrides)
  return config


def run(config, workdir, hooks=()):
  model = models.build(config.model, (1, 1))
  return loop.train(
      config, str(workdir),
      learner=sinusoid_main.build_learner(config, model, config.inner_steps),
      outer_tx=optim.build(config.outer_optimizer, "config.outer_optimizer"),
      sampler=sinusoid.sampler(**config.data),
      hooks=hooks,
  )


def run_episodic(config, workdir, hooks=()):
  """Few-shot classification of 3-way episodes from a host-side episodic sampler."""
  images = np.random.default_rng(0).normal(size=(12, 8, 4)).astype(np.float32)
  sampler = episodic.sampler(images, ways=3, shots=2, queries=2, seed=config.seed)
  model = models.build(ml_collections.ConfigDict(
      dict(name="mlp", hidden=(8,), num_outputs=3)), (1, 4))
  return loop.train(
      config, str(workdir),
      learner=meta.get("maml")(model, losses.cross_entropy, inner_tx=optax.sgd(0.1)),
      outer_tx=optim.build(config.outer_optimizer, "config.outer_optimizer"),
      sampler=sampler, hooks=hooks,
  )


def interrupt_at(step_to_stop):
  def hook(step, state):
    del state
    if step == step_to_stop:
      signal.raise_signal(signal.SIGTERM)
  return hook


def assert_trees_bitwise_equal(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b, strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_interrupted_run_resumes_bitwise_exactly(tmp_path):
  config = smoke_config()
  uninterrupted = run(config, tmp_path / "straight")

  with pytest.raises(SystemExit) as exit_info:
    run(config, tmp_path / "interrupted", hooks=[interrupt_at(13)])
  assert exit_info.value.code == 128 + signal.SIGTERM
  ckpt = checkpoint.Checkpointer(str(tmp_path / "interrupted"), config)
  assert ckpt.latest_step() == 13  # Written on the signal, not only every 10 steps.
  ckpt.close()

  resumed = run(config, tmp_path / "interrupted")
  assert int(resumed.step) == config.num_steps
  assert_trees_bitwise_equal(resumed, uninterrupted)
  # The metrics log has each logged step exactly once.
  with open(tmp_path / "interrupted" / "metrics.jsonl") as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps == list(range(4, config.num_steps + 1, 4))


def test_host_episodes_resume_bitwise_exactly(tmp_path):
  config = smoke_config(meta_batch_size=4)
  uninterrupted = run_episodic(config, tmp_path / "straight")
  with pytest.raises(SystemExit):
    run_episodic(config, tmp_path / "interrupted", hooks=[interrupt_at(7)])
  resumed = run_episodic(config, tmp_path / "interrupted")
  assert int(resumed.step) == config.num_steps
  assert_trees_bitwise_equal(resumed, uninterrupted)


def test_tasks_in_chunks_train_like_the_vmapped_step(tmp_path):
  """``config.task_chunk`` reaches the step: same training to rounding, bad values named."""
  vmapped = run_episodic(smoke_config(meta_batch_size=4, num_steps=3), tmp_path / "vmap")
  chunked = run_episodic(smoke_config(meta_batch_size=4, num_steps=3, task_chunk=1),
                         tmp_path / "chunk")
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               chunked.params, vmapped.params)
  with pytest.raises(ValueError, match=r"config.task_chunk must be an integer >= 0"):
    run_episodic(smoke_config(task_chunk=-1), tmp_path / "bad")
  # A run may resume with fewer tasks at a time (to fit memory), or more.
  longer = run_episodic(smoke_config(meta_batch_size=4, num_steps=4, task_chunk=2),
                        tmp_path / "vmap")
  assert int(longer.step) == 4


def test_resume_refuses_a_different_config(tmp_path):
  run(smoke_config(num_steps=10), tmp_path)
  changed = smoke_config(num_steps=10)
  changed.inner_optimizer.learning_rate = 0.02
  with pytest.raises(ValueError, match=r"config\.inner_optimizer\.learning_rate"):
    run(changed, tmp_path)
  # Nothing saved was lost.
  assert os.path.isdir(tmp_path / "checkpoints" / "10")
  # A longer or shorter run of the same config resumes.
  assert int(run(smoke_config(num_steps=12), tmp_path).step) == 12
  assert int(run(smoke_config(num_steps=5), tmp_path).step) == 12


def corrupt(state_dir):
  for root, _, files in os.walk(state_dir):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"corrupt")


def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
  config = smoke_config(num_steps=20)
  uninterrupted = run(config, tmp_path / "straight")
  run(config, tmp_path / "run")
  corrupt(tmp_path / "run" / "checkpoints" / "20" / "state")
  # The re-run falls back to step 10 and trains from 10 to 20 again.
  with caplog.at_level("WARNING"):
    resumed = run(config, tmp_path / "run")
  assert "checkpoints/20 is unreadable" in caplog.text
  assert "falling back to the previous checkpoint" in caplog.text
  assert_trees_bitwise_equal(resumed, uninterrupted)
  # The unreadable checkpoint was moved aside, not deleted.
  (moved,) = os.listdir(tmp_path / "run" / checkpoint.UNREADABLE_DIR)
  assert moved.startswith("20-")
  assert os.path.isdir(tmp_path / "run" / "checkpoints" / "20")  # Written anew.


def test_no_readable_checkpoint_is_reported(tmp_path):
  config = smoke_config(num_steps=10)
  run(config, tmp_path)
  corrupt(tmp_path / "checkpoints" / "10" / "state")
  with pytest.raises(RuntimeError, match=r"No readable checkpoint in .*checkpoints"):
    run(config, tmp_path)
  assert os.listdir(tmp_path / checkpoint.UNREADABLE_DIR)


def test_checkpoint_of_another_model_names_the_differing_arrays(tmp_path):
  config = smoke_config(num_steps=4)
  run(config, tmp_path)
  other = smoke_config(num_steps=4)
  other.model.hidden = (16, 8)
  learner = sinusoid_main.build_learner(other, models.build(other.model, (1, 1)), 1)
  outer_tx = optim.build(other.outer_optimizer, "config.outer_optimizer")
  abstract = jax.eval_shape(
      lambda: base.init_train_state(learner, outer_tx, jax.random.key(0)))
  ckpt = checkpoint.Checkpointer(str(tmp_path), config)
  with pytest.raises(checkpoint.IncompatibleCheckpointError,
                     match=r"params/Dense_1/kernel: saved shape \(16, 16\), now \(16, 8\)"):
    ckpt.restore(abstract)
  ckpt.close()
  assert os.path.isdir(tmp_path / "checkpoints" / "4")  # Nothing saved was lost.


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
  config = smoke_config(num_steps=40, checkpoint_every=1)
  config.outer_optimizer.learning_rate = 1e12
  with pytest.raises(FloatingPointError, match=r"Non-finite loss or gradient at step \d+"):
    run(config, tmp_path)
  ckpt = checkpoint.Checkpointer(str(tmp_path), config)
  step = ckpt.latest_step()
  assert step is not None
  learner = sinusoid_main.build_learner(config, models.build(config.model, (1, 1)), 1)
  outer_tx = optim.build(config.outer_optimizer, "config.outer_optimizer")
  restored = ckpt.restore(jax.eval_shape(
      lambda: base.init_train_state(learner, outer_tx, jax.random.key(0))))
  ckpt.close()
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(restored.params))


def test_compute_is_accounted_in_metrics_and_compute_json(tmp_path, monkeypatch):
  monkeypatch.setenv(loop.ENV_DEVICE_WATTS, "100")
  config = smoke_config(num_steps=8)
  run(config, tmp_path)
  with open(tmp_path / "compute.json") as f:
    summary = json.load(f)
  with open(tmp_path / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  flops = summary["flops_per_step"]
  # The meta step of a 16-16 MLP on 25 tasks of 10 + 10 points: well over 1e5 FLOPs.
  assert flops > 1e5 and summary["bytes_accessed_per_step"] > 0
  assert summary["flops_are_lower_bound"] is False  # One inner step: no loop.
  assert summary["total_flops"] == flops * 8
  assert [r["total_flops"] for r in rows] == [flops * 4, flops * 8]
  process = summary["this_process"]
  assert process["steps"] == 8 and process["seconds"] > 0
  np.testing.assert_allclose(process["energy_joules"], 100 * process["seconds"])


def test_flops_of_a_step_with_loops_are_marked_a_lower_bound(tmp_path):
  run(smoke_config(num_steps=2, inner_steps=3), tmp_path)
  with open(tmp_path / "compute.json") as f:
    assert json.load(f)["flops_are_lower_bound"] is True


def test_bad_device_power_is_named(monkeypatch):
  monkeypatch.setenv(loop.ENV_DEVICE_WATTS, "lots")
  with pytest.raises(ValueError, match="METALM_DEVICE_WATTS='lots'"):
    loop.device_watts()
