"""Meta-trains on sinusoid regression, evaluates on fresh tasks and plots one.

  python -m experiments.sinusoid.main --config=experiments/sinusoid/configs/maml.py \
      --workdir=runs/sinusoid_maml

Re-running the same command resumes from the last checkpoint in --workdir.
"""

import json
import os

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from experiments.sinusoid import plot
from experiments.sinusoid.configs import maml as reference_config
from metalm import losses, meta, models
from metalm.data import sinusoid
from metalm.eval import episodic, plots
from metalm.train import config_check, distributed, loop, optim

_DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "configs", "maml.py")
CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Config file.")
WORKDIR = flags.DEFINE_string("workdir", "runs/sinusoid_maml", "Run directory.")


def build_learner(config, model, inner_steps):
  inner_tx = optim.build(config.inner_optimizer, "config.inner_optimizer")
  factory = meta.get(config.method)
  return factory(model, losses.mse, inner_tx=inner_tx, inner_steps=inner_steps)


def main(argv):
  del argv
  distributed.initialize_from_env()
  config, workdir = CONFIG.value, WORKDIR.value
  config_check.check_fields(
      config, reference_config.get_config(),
      free=("model", "inner_optimizer", "outer_optimizer"),
  )
  model = models.build(config.model, (1, 1))
  learner = build_learner(config, model, config.inner_steps)
  outer_tx = optim.build(config.outer_optimizer, "config.outer_optimizer")
  state = loop.train(
      config, workdir, learner=learner, outer_tx=outer_tx,
      sampler=sinusoid.sampler(**config.data),
  )

  eval_data = {**config.data.to_dict(), "num_query": config.eval.num_query}
  tasks_key, adapt_key, plot_key = jax.random.split(jax.random.key(config.eval.seed), 3)
  tasks = sinusoid.sampler(**eval_data).sample(tasks_key, config.eval.num_tasks)
  learners = {k: build_learner(config, model, k) for k in config.eval.inner_steps}
  results = {"method": config.method, "norm": model.norm, "step": int(state.step),
             "num_tasks": config.eval.num_tasks, "mse_after_steps": {}}
  for steps, learner_k in learners.items():
    summary = episodic.evaluate(learner_k, state.params, state.model_state, tasks,
                                adapt_key)
    results["mse_after_steps"][str(steps)] = summary["mse"]
    logging.info("MSE after %d inner step(s) on %d held-out tasks: %.3f +- %.3f",
                 steps, config.eval.num_tasks, summary["mse"]["mean"],
                 summary["mse"]["ci95"])
  results["compute"] = loop.compute_summary(workdir)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({**results, "config": json.loads(config.to_json())}, f, indent=2)
  plot_path = os.path.join(workdir, "adaptation.png")
  plot.adaptation(plot_path, model, learners, state.params, state.model_state,
                  plot_key, data_config=config.data)
  if jax.process_index() == 0:
    mse = {f"{k} step{'s' * (k != 1)}": (results["mse_after_steps"][str(k)]["mean"],
                                          results["mse_after_steps"][str(k)]["ci95"])
           for k in learners}
    pngs = [plots.learning_curves(workdir),
            plots.accuracy_with_ci(os.path.join(workdir, "accuracy.png"), mse, ylabel="MSE",
                                   xlabel="inner steps on the K shots"),
            plot_path]
    plots.to_tensorboard(workdir, int(state.step), pngs)
  logging.info("Wrote %s and %s.", os.path.join(workdir, "results.json"), plot_path)


if __name__ == "__main__":
  app.run(main)
