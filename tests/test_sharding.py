"""The task-sharded meta step on an 8-device CPU mesh equals the single-device step."""

import jax
import ml_collections
import numpy as np
import optax

from metalm import losses, meta, models
from metalm.data import sinusoid
from metalm.meta import base
from metalm.train import loop, sharding


def test_task_mesh_uses_devices_that_divide_the_meta_batch():
  devices = jax.devices()
  assert len(devices) == 8  # Set by conftest.
  assert sharding.task_mesh(16, devices).size == 8
  assert sharding.task_mesh(25, devices).size == 5
  assert sharding.task_mesh(7, devices).size == 7
  assert sharding.task_mesh(11, devices).size == 1
  assert sharding.task_mesh(16).size == 1  # CPU devices share the cores.


def test_sharded_meta_step_equals_single_device_step():
  model = models.build(
      ml_collections.ConfigDict(dict(name="mlp", hidden=(16, 16), num_outputs=1)), (1, 1))
  learner = meta.get("maml")(model, losses.mse, inner_steps=2)
  outer_tx = optax.adam(1e-3)
  sampler = sinusoid.sampler(num_support=5, num_query=5)
  init = lambda: base.init_train_state(learner, outer_tx, jax.random.key(0))

  single = loop.make_step(learner, outer_tx, sampler, meta_batch_size=16, seed=3)
  mesh = sharding.task_mesh(16, jax.devices())
  sharded = loop.make_step(learner, outer_tx, sampler, meta_batch_size=16, seed=3,
                           mesh=mesh)
  state_a, state_b = init(), sharding.replicate(init(), mesh)  # Steps donate state.
  for _ in range(3):
    state_a, metrics_a = single(state_a)
    state_b, metrics_b = sharded(state_b)
  assert len(state_b.params["head"]["kernel"].sharding.device_set) == 8
  np.testing.assert_allclose(metrics_a["loss"], metrics_b["loss"], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(state_a.params), jax.tree.leaves(state_b.params),
                  strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
