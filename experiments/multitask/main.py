"""Multitask training with any balancer: Multi-MNIST, CoNLL-2000, sentence tasks, NYUv2,
Cityscapes, QM9.

  python -m experiments.multitask.main \
      --config=experiments/multitask/configs/multi_mnist.py:pcgrad \
      --workdir=runs/multi_mnist_pcgrad

Re-running the same command resumes from the last checkpoint in --workdir. Writes
``results.json``: per-task test metrics, and delta_m against the config's single-task
baselines when it has them.
"""

import json
import os
import time

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.multitask import benchmarks
from experiments.multitask.configs import base as reference
from metalm import mtl, registry
from metalm.eval import multitask as multitask_eval
from metalm.eval import plots
from metalm.train import config_check, loop, multitask, optim

CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)


def summarize(config, scores, higher_is_better) -> dict:
  """``delta_m`` (%, lower is better) against ``config.baselines``, when given, over the
  tasks trained (a run of some of a benchmark's tasks is compared on those)."""
  baselines = {t: v for t, v in config.baselines.to_dict().items() if t in scores}
  if not baselines:
    return {}
  return {"delta_m": multitask_eval.delta_m(scores, baselines, higher_is_better),
          "baselines": baselines}


def main(argv):
  del argv
  config, workdir = CONFIG.value, WORKDIR.value
  config_check.check_fields(config, reference.reference(), free=reference.FREE)
  start = time.perf_counter()
  setup = registry.lookup("benchmark in config.benchmark", config.benchmark,
                          benchmarks.BENCHMARKS)
  balancer = mtl.build(config.balancer)  # Before loading data: a bad name fails fast.
  bench = setup(config)
  state = multitask.train(
      config, workdir, model=bench.model, balancer=balancer,
      tx=optim.build(config.optimizer, "config.optimizer"), loss_fns=bench.loss_fns,
      batcher=bench.batcher, rep_grad=config.rep_grad)
  scores = bench.evaluate(state.params, state.model_state)
  for task, metrics in scores.items():
    logging.info("%s on %s: %s", task, config.eval.split,
                 ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
  results = {"benchmark": config.benchmark, "dataset": config.data.get("dataset"),
             "balancer": config.balancer.name, "rep_grad": config.rep_grad,
             "step": int(state.step), "eval_split": config.eval.split, "scores": scores,
             "higher_is_better": {t: dict(m) for t, m in bench.higher_is_better.items()},
             **summarize(config, scores, bench.higher_is_better),
             "wall_clock_s": time.perf_counter() - start,
             "config": json.loads(config.to_json())}
  results["compute"] = loop.compute_summary(workdir)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  plots.to_tensorboard(workdir, int(state.step), [plots.learning_curves(workdir)])
  logging.info("Wrote %s.", os.path.join(workdir, "results.json"))


if __name__ == "__main__":
  app.run(main)
