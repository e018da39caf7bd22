"""Cost of each balancer relative to equal weighting, for 2, 10 and 40 tasks.

  python bench/mtl_balancers.py [--tasks 2 10 40] [--balancers equal_weighting pcgrad ...]

Hard parameter sharing: an MLP trunk (64 -> 256 -> 256) with one linear regression head
per task, batch 256, Adam. Loss balancers take one backward pass; gradient balancers
take per-task gradients of the trunk by ``vmap`` over ``vjp`` and solve their
combination inside the same jitted step. One JSON line per (balancer, T): steps/s,
its ratio to equal weighting measured in the same process, and the compiled step's
memory (``memory_analysis``) with its ratio.
"""

import argparse
import sys

import flax.linen as nn
import jax
import numpy as np
import optax

from metalm import losses, mtl
from metalm.mtl import architectures, base, step
from metalm.mtl.architectures import trunks

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import harness  # noqa: E402  (bench/harness.py)


def setup(num_tasks: int, batch_size: int = 256, dim: int = 64):
  tasks = tuple(f"t{i}" for i in range(num_tasks))
  model = architectures.build("hard_sharing", trunks.MLP((256, 256)), nn.Dense(1),
                              (1, dim), tasks=tasks)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(batch_size, dim)).astype(np.float32)
  y = {t: rng.normal(size=(batch_size, 1)).astype(np.float32) for t in tasks}
  return model, step.MultiTaskBatch(x, y), {t: losses.mse for t in tasks}


def measure(name, num_tasks, windows, steps):
  model, batch, loss_fns = setup(num_tasks)
  shared_params, _ = base.split_params(jax.eval_shape(model.init, jax.random.key(0))[0])
  balancer = mtl.build({"name": name}, shared_params=shared_params)
  tx = optax.adam(1e-3)
  state = step.init_train_state(model, balancer, tx, jax.random.key(0))

  def train_step(state, batch, key):
    return step.train_step(model, balancer, tx, loss_fns, state, batch, key)

  return harness.time_step(train_step, state, batch, jax.random.key(1),
                           windows=windows, steps=steps)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--tasks", type=int, nargs="+", default=[2, 10, 40])
  parser.add_argument("--balancers", nargs="+", default=sorted(mtl.BALANCERS))
  parser.add_argument("--windows", type=int, default=5)
  parser.add_argument("--steps", type=int, default=20)
  args = parser.parse_args()
  for num_tasks in args.tasks:
    reference = measure("equal_weighting", num_tasks, args.windows, args.steps)
    for name in args.balancers:
      timing = (reference if name == "equal_weighting"
                else measure(name, num_tasks, args.windows, args.steps))
      timing["time_vs_equal_weighting"] = round(reference["median"] / timing["median"], 2)
      if timing["step_memory_mb"] and reference["step_memory_mb"]:
        timing["memory_vs_equal_weighting"] = round(
            timing["step_memory_mb"] / reference["step_memory_mb"], 2)
      harness.report(f"multitask step, {name}",
                     {"tasks": num_tasks, "trunk": "MLP 64-256-256", "batch": 256}, timing)


if __name__ == "__main__":
  main()
