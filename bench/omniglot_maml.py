"""Meta-steps per second of Conv-4 MAML on Omniglot-shaped episodes (Finn et al. 2017).

  python bench/omniglot_maml.py [--order 2] [--conv_impl auto] [--meta_batch_size 32]
      [--task_chunk 0]

Conv-4 with 64 filters and BatchNorm on 28x28x1 inputs, 5-way 1-shot, 15 queries per
class, one inner SGD step. Episodes are random arrays of the real shapes (the step's cost
does not depend on the pixel values). Prints one JSON line per measurement, with the
step's GFLOP (XLA's count for its own convolution) and their rate as a fraction of the
device's measured float32 matrix-multiply rate.
"""

import argparse
import sys

import jax
import ml_collections
import numpy as np
import optax

from metalm import losses, meta, models, types
from metalm.meta import base

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import harness  # noqa: E402  (bench/harness.py)


def episodes(ways, shots, queries, meta_batch_size, seed=0) -> types.TaskBatch:
  rng = np.random.default_rng(seed)
  t = meta_batch_size
  return types.TaskBatch(
      rng.random((t, ways * shots, 28, 28, 1), np.float32),
      np.tile(np.repeat(np.arange(ways, dtype=np.int32), shots), (t, 1)),
      rng.random((t, ways * queries, 28, 28, 1), np.float32),
      np.tile(np.repeat(np.arange(ways, dtype=np.int32), queries), (t, 1)),
  )


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--order", type=int, choices=(1, 2), default=2)
  parser.add_argument("--conv_impl", default="auto")
  parser.add_argument("--ways", type=int, default=5)
  parser.add_argument("--shots", type=int, default=1)
  parser.add_argument("--queries", type=int, default=15)
  parser.add_argument("--meta_batch_size", type=int, default=32)
  parser.add_argument("--inner_steps", type=int, default=1)
  parser.add_argument("--task_chunk", type=int, default=0,
                      help="tasks run at a time (0: all, vmapped); base.batched_outer_loss")
  parser.add_argument("--windows", type=int, default=5)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()

  def make_step(conv_impl, task_chunk):
    model = models.build(ml_collections.ConfigDict(dict(
        name="conv4", num_classes=args.ways, filters=64, norm="transductive",
        conv_impl=conv_impl)), (1, 28, 28, 1))
    learner = meta.get(method)(model, losses.cross_entropy, inner_tx=optax.sgd(0.4),
                               inner_steps=args.inner_steps)

    def step(state, tasks, key):
      return base.meta_step(learner, outer_tx, state, tasks, key,
                            task_chunk=task_chunk)

    return learner, step

  method = "maml" if args.order == 2 else "fomaml"
  outer_tx = optax.adam(1e-3)
  tasks = jax.device_put(episodes(args.ways, args.shots, args.queries,
                                  args.meta_batch_size))
  learner, step = make_step(args.conv_impl, args.task_chunk)
  state = base.init_train_state(learner, outer_tx, jax.random.key(0))
  # FLOPs as XLA counts its own convolution over the whole vmapped meta-batch, whatever
  # the formulation timed (Winograd multiplies less; a chunked loop's body counts once).
  # The inner loop is a scan, counted right only when it runs once.
  flops = harness.lowered_flops(jax.jit(make_step("xla", 0)[1]).lower(
      state, tasks, jax.random.key(1)), loops_run_once=args.inner_steps == 1)
  timing = harness.time_step(step, state, tasks, jax.random.key(1), windows=args.windows,
                             steps=args.steps, flops=flops, peak=harness.matmul_peak())
  harness.report(
      f"omniglot conv4 {method} meta-steps/s",
      {"ways": args.ways, "shots": args.shots, "queries": args.queries,
       "meta_batch": args.meta_batch_size, "inner_steps": args.inner_steps,
       "filters": 64, "conv_impl": args.conv_impl, "task_chunk": args.task_chunk}, timing)


if __name__ == "__main__":
  main()
