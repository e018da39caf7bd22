"""Meta-steps per second of every few-shot method exactly as its Omniglot config trains it.

  python bench/fewshot_methods.py [--methods protonet maml_plus_plus imaml] [--setting 5w1s]

Each method's model, learner, outer optimizer and meta-batch come from
``experiments/fewshot/configs/<method>.py:<setting>`` (ProtoNets: Snell et al. 2017;
MAML++: Antoniou et al. 2019; iMAML: Rajeswaran et al. 2019; ...), so the figure is the
cost of one step of that paper's training. Episodes are random arrays of the real shapes
(the step's cost does not depend on the pixel values). Prints one JSON line per method.
"""

import argparse
import importlib
import os
import sys

import jax

from metalm import losses, meta, models
from metalm.meta import base
from metalm.train import optim

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.dirname(BENCH)]  # bench/ and the repository (experiments/).
import harness  # noqa: E402  (bench/harness.py)
import omniglot_maml  # noqa: E402  (bench/omniglot_maml.py)

DEFAULT_METHODS = ("protonet", "maml", "fomaml", "maml_plus_plus", "imaml", "anil",
                   "meta_sgd", "r2d2", "metaoptnet")


def measure(method: str, setting: str, windows: int, steps: int, meta_batch_size: int):
  config = importlib.import_module(f"experiments.fewshot.configs.{method}").get_config(
      setting)
  data = config.data
  if meta_batch_size:
    config.meta_batch_size = meta_batch_size
  model = models.build(config.model, (1, 28, 28, 1))
  learner = meta.build(config.method, model, loss_fn=losses.cross_entropy,
                       num_ways=data.ways)
  outer_tx = optim.build(config.outer_optimizer, "config.outer_optimizer")
  tasks = jax.device_put(omniglot_maml.episodes(data.ways, data.shots, data.queries,
                                                config.meta_batch_size))

  def step(state, tasks, key):
    return base.meta_step(learner, outer_tx, state, tasks, key)

  state = base.init_train_state(learner, outer_tx, jax.random.key(0))
  timing = harness.time_step(step, state, tasks, jax.random.key(1), windows=windows,
                             steps=steps)
  harness.report(
      f"omniglot {config.method.name} meta-steps/s",
      {"config": f"experiments/fewshot/configs/{method}.py:{setting}",
       "ways": data.ways, "shots": data.shots, "queries": data.queries,
       "meta_batch": config.meta_batch_size, "model": config.model.to_dict(),
       "inner_steps": config.method.get("inner_steps")}, timing)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
  parser.add_argument("--setting", default="5w1s")
  parser.add_argument("--meta_batch_size", type=int, default=0,
                      help="0: the config's meta-batch.")
  parser.add_argument("--windows", type=int, default=5)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  for method in args.methods:
    measure(method, args.setting, args.windows, args.steps, args.meta_batch_size)


if __name__ == "__main__":
  main()
