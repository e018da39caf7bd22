"""Sharding the meta-batch of tasks over a device mesh with ``jax.sharding``.

Parameters and optimizer state are replicated; the task axis of every ``TaskBatch``
is split over the mesh axis ``"tasks"``, so XLA computes each device's tasks locally
and all-reduces the meta-gradient.
"""

import jax
import numpy as np
from jax import sharding as jsharding

TASK_AXIS = "tasks"


def task_mesh(num_tasks: int, devices=None) -> jsharding.Mesh:
  """A 1-D mesh over as many devices as evenly divide ``num_tasks``.

  Args:
    num_tasks: the meta-batch size T.
    devices: candidate devices; if None, all of ``jax.devices()`` on accelerators and in
      multi-process runs, and one device on a single CPU process, whose several
      "devices" (forced with XLA_FLAGS) share the same cores, so splitting tasks over
      them only adds collectives.
  """
  if devices is None:
    single_cpu = jax.default_backend() == "cpu" and jax.process_count() == 1
    devices = jax.devices()[:1] if single_cpu else jax.devices()
  devices = list(devices)
  used = max(d for d in range(1, len(devices) + 1) if num_tasks % d == 0)
  return jsharding.Mesh(np.array(devices[:used]), (TASK_AXIS,))


def replicate(tree, mesh: jsharding.Mesh):
  """Places ``tree`` whole on every device of ``mesh``."""
  return jax.device_put(tree, jsharding.NamedSharding(mesh, jsharding.PartitionSpec()))


def shard_tasks(tasks, mesh: jsharding.Mesh):
  """Constrains the leading (task) axis of every leaf to be split over the mesh.

  Use inside jit; outside, ``jax.device_put`` with ``task_sharding(mesh)``.
  """
  return jax.lax.with_sharding_constraint(tasks, task_sharding(mesh))


def task_sharding(mesh: jsharding.Mesh) -> jsharding.NamedSharding:
  return jsharding.NamedSharding(mesh, jsharding.PartitionSpec(TASK_AXIS))
