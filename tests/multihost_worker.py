"""One process of the multi-host test: a few sharded MAML steps, then a checksum.

Run by tests/test_distributed.py, alone with 8 CPU devices or as one of two processes
with 4 devices each (``METALM_*`` variables as in ``metalm.train.distributed``).
"""

import json

import jax
import numpy as np

from metalm.train import distributed

distributed.initialize_from_env()

import ml_collections  # noqa: E402  (after joining the run)
import optax  # noqa: E402

from metalm import losses, meta, models, types  # noqa: E402
from metalm.data import sinusoid  # noqa: E402
from metalm.meta import base  # noqa: E402
from metalm.train import loop, sharding  # noqa: E402

META_BATCH = 16


def host_tasks(step: int) -> types.TaskBatch:
  """A host-side batch, the same on every process (as from a seeded episode sampler)."""
  rng = np.random.default_rng(step)
  x = rng.uniform(-5, 5, (META_BATCH, 10, 1)).astype(np.float32)
  y = np.sin(x + rng.uniform(0, np.pi, (META_BATCH, 1, 1))).astype(np.float32)
  return types.TaskBatch(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])


def main():
  model = models.build(ml_collections.ConfigDict(
      dict(name="mlp", hidden=(16, 16), num_outputs=1)), (1, 1))
  learner = meta.get("maml")(model, losses.mse, inner_steps=2)
  tx = optax.adam(1e-3)
  mesh = sharding.task_mesh(META_BATCH, jax.devices())
  state = sharding.replicate(base.init_train_state(learner, tx, jax.random.key(0)), mesh)
  in_jit = loop.make_step(learner, tx, sinusoid.sampler(num_support=5, num_query=5),
                          meta_batch_size=META_BATCH, seed=3, mesh=mesh)
  on_host = loop.make_step(learner, tx, None, meta_batch_size=META_BATCH, seed=3, mesh=mesh)
  for step in range(3):
    state, _ = in_jit(state)
    tasks = jax.device_put(host_tasks(step), sharding.task_sharding(mesh))
    state, _ = on_host(state, tasks)
  params = [np.asarray(leaf.addressable_data(0)).tolist()
            for leaf in jax.tree.leaves(state.params)]
  print("RESULT " + json.dumps({"process": jax.process_index(), "devices": mesh.size,
                                "params": params}), flush=True)


if __name__ == "__main__":
  main()
