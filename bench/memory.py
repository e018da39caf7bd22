"""Peak memory of one meta-step against the number of inner steps, from XLA's analysis.

  python bench/memory.py [--inner_steps 1 5 25] [--meta_batch_size 32]

Second-order MAML on Omniglot-shaped 5-way 1-shot episodes (Conv-4, 64 filters) with and
without rematerialized inner steps (``jax.checkpoint`` on the scan body), with the
tasks run one at a time (``task_chunk=1``, each rematerialized), and iMAML,
whose implicit meta-gradient stores nothing from the inner loop. The figure is the
compiled step's arguments + outputs + temporaries (``compiled.memory_analysis()``), so
it needs no run and is the same on any machine of the backend. One JSON line each.
"""

import argparse
import json
import sys
import time

import jax
import ml_collections
import optax

from metalm import losses, meta, models
from metalm.meta import base

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import harness  # noqa: E402  (bench/harness.py)
import omniglot_maml  # noqa: E402  (bench/omniglot_maml.py)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--inner_steps", type=int, nargs="+", default=[1, 5, 25])
  parser.add_argument("--meta_batch_size", type=int, default=32)
  parser.add_argument("--filters", type=int, default=64)
  args = parser.parse_args()
  model = models.build(ml_collections.ConfigDict(dict(
      name="conv4", num_classes=5, filters=args.filters, norm="transductive")),
      (1, 28, 28, 1))
  tasks = omniglot_maml.episodes(5, 1, 15, args.meta_batch_size)
  outer_tx = optax.adam(1e-3)
  variants = {
      "maml": lambda k: meta.get("maml")(model, losses.cross_entropy,
                                         inner_tx=optax.sgd(0.4), inner_steps=k),
      "maml+remat": lambda k: meta.get("maml")(model, losses.cross_entropy,
                                               inner_tx=optax.sgd(0.4), inner_steps=k,
                                               remat=True),
      "imaml": lambda k: meta.get("imaml")(model, losses.cross_entropy,
                                           inner_tx=optax.sgd(0.1), inner_steps=k),
  }
  variants["maml, task_chunk=1"] = variants["maml"]
  for name, make in variants.items():
    for steps in args.inner_steps:
      learner = make(steps)
      task_chunk = 1 if name.endswith("task_chunk=1") else 0

      def step(state, tasks, key, learner=learner, task_chunk=task_chunk):
        return base.meta_step(learner, outer_tx, state, tasks, key, task_chunk=task_chunk)

      state = jax.eval_shape(lambda key, learner=learner: base.init_train_state(
          learner, outer_tx, key), jax.random.key(0))
      start = time.perf_counter()
      compiled = jax.jit(step, donate_argnums=0).lower(
          state, tasks, jax.random.key(1)).compile()
      print(json.dumps({
          "what": "meta-step memory", "method": name, "inner_steps": steps,
          "meta_batch": args.meta_batch_size, "filters": args.filters,
          "step_memory_mb": harness.compiled_memory_mb(compiled),
          "compile_s": round(time.perf_counter() - start, 1),
          "machine": harness.machine()}), flush=True)


if __name__ == "__main__":
  main()
