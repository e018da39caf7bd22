"""Few-shot image classification: meta-train on episodes, test on held-out classes.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/maml.py:5w1s \
      --workdir=runs/omniglot_maml_5w1s

Re-running the same command resumes from the last checkpoint in --workdir.
"""

import json
import os
import time

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments.fewshot.configs import base as reference
from metalm import losses, meta, models, registry, validate
from metalm.data import cifar_fs, episodic, mini_imagenet, omniglot, tiered_imagenet
from metalm.eval import episodic as episodic_eval
from metalm.eval import plots
from metalm.train import config_check, distributed, loop, optim

CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
DATASETS = {"omniglot": omniglot.load, "mini_imagenet": mini_imagenet.load,
            "tiered_imagenet": tiered_imagenet.load, "cifar_fs": cifar_fs.load,
            "fc100": cifar_fs.load_fc100}


def load_splits(data):
  loader = registry.lookup("dataset in config.data.dataset", data.dataset, DATASETS)
  return loader(data.data_dir or None, split=data.split)


def evaluator(config, model, splits):
  """``evaluate(state, split) -> (accuracy, ci95)`` in %, on ``config.eval.episodes``.

  Episodes of held-out classes from ``split`` ("val" or "test"), the same ones at every
  call (``config.eval.seed``), compiled once for both splits.
  """
  ev = config.eval
  overrides = {"inner_steps": ev.inner_steps} if "inner_steps" in config.method else {}
  learner = meta.build(config.method, model, loss_fn=losses.cross_entropy,
                       num_ways=ev.ways, **overrides)
  per_task = jax.jit(lambda p, s, t, k: episodic_eval.per_task(learner, p, s, t, k))

  def evaluate(state, split):
    sampler = episodic.sampler(getattr(splits, split).images, ways=ev.ways,
                               shots=ev.shots, queries=ev.queries, seed=ev.seed)
    accuracy = []
    for chunk in range(-(-ev.episodes // ev.batch_episodes)):
      tasks = sampler.batch(chunk, ev.batch_episodes)
      values = per_task(state.params, state.model_state, tasks, jax.random.key(chunk))
      accuracy.append(np.asarray(values["accuracy"]))
    mean, ci95 = episodic_eval.confidence_interval(np.concatenate(accuracy)[:ev.episodes])
    return 100 * mean, 100 * ci95

  return evaluate


def accuracy_curve(config, workdir, evaluate):
  """A train-loop hook: every ``config.eval.every`` steps, meta-val accuracy to
  ``evaluations.jsonl`` (the curve that picks a checkpoint; the test split stays unseen).
  """
  def hook(step, state):
    if step % config.eval.every == 0 and step != config.num_steps:
      accuracy, ci95 = evaluate(state, "val")
      record_evaluation(config, workdir, step, "val", accuracy, ci95)
      logging.info("step %d: %.2f +- %.2f%% on %d val episodes", step, accuracy, ci95,
                   config.eval.episodes)
  return hook


def record_evaluation(config, workdir, step, split, accuracy, ci95):
  ev = config.eval
  if jax.process_index() != 0:
    return
  with open(os.path.join(workdir, "evaluations.jsonl"), "a") as f:
    f.write(json.dumps({"step": step, "split": split, "ways": ev.ways, "shots": ev.shots,
                        "episodes": ev.episodes, "inner_steps": ev.inner_steps,
                        "accuracy": accuracy, "ci95": ci95}) + "\n")


def main(argv):
  del argv
  distributed.initialize_from_env()
  config, workdir = CONFIG.value, WORKDIR.value
  config_check.check_fields(
      config, reference.omniglot(5, 1, method={}, head=False),
      free=("method", "model", "outer_optimizer"))
  start = time.perf_counter()
  splits = load_splits(config.data)
  data = config.data
  first_class = splits.train.images[0]  # Classes may differ in size (tiered-ImageNet).
  model = models.build(config.model, (1,) + first_class.shape[1:])
  learner = meta.build(config.method, model, loss_fn=losses.cross_entropy,
                       num_ways=data.ways)
  evaluate = evaluator(config, model, splits)
  every = validate.integer(config.eval.every, "config.eval.every", minimum=0)
  hooks = [accuracy_curve(config, workdir, evaluate)] if every else []
  state = loop.train(
      config, workdir, learner=learner,
      outer_tx=optim.build(config.outer_optimizer, "config.outer_optimizer"),
      sampler=episodic.sampler(splits.train.images, ways=data.ways, shots=data.shots,
                               queries=data.queries, seed=config.seed),
      hooks=hooks,
  )
  ev = config.eval
  accuracy, ci95 = evaluate(state, ev.split)
  record_evaluation(config, workdir, int(state.step), ev.split, accuracy, ci95)
  logging.info("%s %d-way %d-shot accuracy on %d %s episodes: %.2f +- %.2f%%",
               config.method.name, ev.ways, ev.shots, ev.episodes, ev.split, accuracy, ci95)
  results = {"method": config.method.name, "dataset": data.dataset, "split": data.split,
             "eval_split": ev.split, "ways": ev.ways, "shots": ev.shots,
             "norm": model.norm, "step": int(state.step), "accuracy": accuracy,
             "ci95": ci95, "wall_clock_s": time.perf_counter() - start,
             "config": json.loads(config.to_json())}
  results["compute"] = loop.compute_summary(workdir)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  write_plots(config, workdir, int(state.step), accuracy, ci95)


def write_plots(config, workdir, step, accuracy, ci95):
  """``learning_curves.png`` and ``accuracy.png`` (with its 95% CI), also to TensorBoard."""
  if jax.process_index() != 0:
    return
  ev = config.eval
  label = f"{config.method.name} {ev.ways}-way {ev.shots}-shot"
  pngs = [plots.learning_curves(workdir),
          plots.accuracy_with_ci(os.path.join(workdir, "accuracy.png"),
                                 {label: (accuracy, ci95)},
                                 title=f"{config.data.dataset}, {ev.episodes} {ev.split} "
                                       "episodes")]
  plots.to_tensorboard(workdir, step, pngs)


if __name__ == "__main__":
  app.run(main)
