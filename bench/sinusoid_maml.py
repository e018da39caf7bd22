"""Meta-steps per second of MAML on sinusoid regression (Finn et al. 2017 setup).

  python bench/sinusoid_maml.py [--first_order] [--windows 7] [--steps 500]

Prints one JSON line (``harness.report``): configuration, compile time, median / min /
max steps per second over the timed windows (after warm-up), memory and the machine.
"""

import argparse
import sys

import jax
import ml_collections
import optax

from metalm import losses, meta, models
from metalm.data import sinusoid
from metalm.meta import base

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import harness  # noqa: E402  (bench/harness.py)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--first_order", action="store_true")
  parser.add_argument("--meta_batch_size", type=int, default=25)
  parser.add_argument("--windows", type=int, default=7)
  parser.add_argument("--steps", type=int, default=500)
  args = parser.parse_args()

  model = models.build(
      ml_collections.ConfigDict(dict(name="mlp", hidden=(40, 40), num_outputs=1)), (1, 1))
  method = "fomaml" if args.first_order else "maml"
  learner = meta.get(method)(model, losses.mse, inner_tx=optax.sgd(0.01), inner_steps=1)
  outer_tx = optax.adam(1e-3)
  sampler = sinusoid.sampler(num_support=10, num_query=10)

  def step(state, key):
    tasks = sampler.sample(jax.random.fold_in(key, state.step), args.meta_batch_size)
    return base.meta_step(learner, outer_tx, state, tasks, key)

  state = base.init_train_state(learner, outer_tx, jax.random.key(0))
  # One inner step: the inner scan runs once, so XLA's FLOP count is exact.
  flops = harness.lowered_flops(jax.jit(step).lower(state, jax.random.key(1)),
                                loops_run_once=True)
  timing = harness.time_step(step, state, jax.random.key(1), windows=args.windows,
                             steps=args.steps, flops=flops)
  harness.report(
      f"sinusoid {method} meta-steps/s",
      {"model": "MLP 1-40-40-1", "K": 10, "meta_batch": args.meta_batch_size,
       "inner_steps": 1, "impl": "jax jit + vmap over tasks"}, timing)


if __name__ == "__main__":
  main()
