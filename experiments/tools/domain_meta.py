"""Meta-learning across rotated-MNIST domains: each task comes from one rotation angle.

A task is N-way K-shot over the ten digits, every image of it rotated by one angle (a
domain). MAML (Finn et al. 2017, arXiv:1703.03400) on an MLP is meta-trained on tasks of
``train_angles`` (training images) and evaluated on tasks of ``heldout_angles`` (test
images, angles never seen in meta-training), with 95% CIs over episodes; the same
learner from its initialization (no meta-training) is the floor, and tasks at the
training angles (test images) show the gap to the held-out domains.
"""

import os

import jax

from experiments.tools import metatasks
from metalm.eval import plots


def run(config, workdir):
  cfg = config.domain_meta
  overlap = set(cfg.train_angles) & set(cfg.heldout_angles)
  if overlap:
    raise ValueError(f"config.domain_meta: held-out angles {sorted(overlap)} are also "
                     "training angles.")
  train = [metatasks.class_arrays("train", per_class=cfg.per_class, angle=a)
           for a in cfg.train_angles]
  model, learn = metatasks.learner(cfg)
  del model
  key = jax.random.key(config.seed + 7)
  state = metatasks.meta_train(learn, metatasks.samplers(train, cfg, config.seed), cfg,
                               key=key, log=(workdir, "domain_meta"))
  init_params, init_state = jax.jit(learn.init)(jax.random.split(key)[0])

  angles = {"train": tuple(cfg.train_angles), "heldout": tuple(cfg.heldout_angles)}
  accuracy = {"meta_trained": {}, "no_meta_training": {}}
  evaluate = metatasks.evaluator(learn)
  for group, group_angles in angles.items():
    test = [metatasks.class_arrays("test", per_class=cfg.eval_per_class, angle=a)
            for a in group_angles]
    for angle, sampler in zip(group_angles, metatasks.samplers(test, cfg, config.seed + 100),
                              strict=True):
      name = f"{group}_{angle:g}"
      eval_key = jax.random.fold_in(key, int(angle * 10) + 1)
      accuracy["meta_trained"][name] = evaluate(
          state.params, state.model_state, sampler, cfg.eval_episodes, eval_key)
      if group == "heldout":
        accuracy["no_meta_training"][name] = evaluate(
            init_params, init_state, sampler, cfg.eval_episodes, eval_key)
  png = plots.accuracy_with_ci(
      os.path.join(workdir, "domain_meta.png"),
      {f"{model}\n{name.replace('_', ' ')}°": (r["accuracy"], r["ci95"])
       for model, per_angle in accuracy.items() for name, r in per_angle.items()},
      title=f"MAML {cfg.ways}-way {cfg.shots}-shot, rotated-MNIST domains as tasks "
            f"(meta-trained on {', '.join(f'{a:g}' for a in cfg.train_angles)}°)",
      xlabel="model / test angle")
  return {"method": "maml", "ways": cfg.ways, "shots": cfg.shots, "queries": cfg.queries,
          "hidden": list(cfg.hidden), "inner_steps": cfg.inner_steps,
          "inner_learning_rate": cfg.inner_learning_rate, "meta_steps": cfg.meta_steps,
          "meta_batch_size": cfg.meta_batch_size, "train_angles": list(cfg.train_angles),
          "heldout_angles": list(cfg.heldout_angles), "eval_episodes": cfg.eval_episodes,
          "accuracy_percent": accuracy, "pngs": [os.path.basename(png)]}
