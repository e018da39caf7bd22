"""Meta-steps per second of MAML on sinusoid regression (Finn et al. 2017 setup).

  python bench/sinusoid_maml.py [--first_order] [--windows 7] [--steps 500]

Prints one JSON line: configuration, compile time, median / min / max steps per second
over the timed windows (after warm-up), peak resident memory and the machine.
"""

import argparse
import json
import platform
import resource
import statistics
import time

import jax
import ml_collections
import optax

from metalm import losses, meta, models
from metalm.data import sinusoid
from metalm.meta import base


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

  step = jax.jit(step, donate_argnums=0)
  state = base.init_train_state(learner, outer_tx, jax.random.key(0))
  key = jax.random.key(1)
  start = time.perf_counter()
  state, _ = step(state, key)
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - start
  for _ in range(args.steps):  # Warm-up window.
    state, _ = step(state, key)
  jax.block_until_ready(state)
  rates = []
  for _ in range(args.windows):
    start = time.perf_counter()
    for _ in range(args.steps):
      state, _ = step(state, key)
    jax.block_until_ready(state)
    rates.append(args.steps / (time.perf_counter() - start))
  print(json.dumps({
      "what": f"sinusoid {method} meta-steps/s",
      "config": {"model": "MLP 1-40-40-1", "K": 10, "meta_batch": args.meta_batch_size,
                 "inner_steps": 1, "impl": "jax jit + vmap over tasks"},
      "median": round(statistics.median(rates), 1),
      "min": round(min(rates), 1),
      "max": round(max(rates), 1),
      "windows": f"{args.windows} x {args.steps} steps",
      "compile_s": round(compile_s, 2),
      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
      "machine": f"{platform.processor() or platform.machine()}, "
                 f"{jax.device_count()} x {jax.devices()[0].platform}, jax {jax.__version__}",
  }))


if __name__ == "__main__":
  main()
