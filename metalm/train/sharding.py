"""Sharding the meta-batch of tasks over a device mesh with ``jax.sharding``.

Parameters and optimizer state are replicated; the task axis of every ``TaskBatch``
is split over the mesh axis ``"tasks"``, so XLA computes each device's tasks locally
and all-reduces the meta-gradient.
"""

import os

import jax
import numpy as np
from jax import sharding as jsharding

TASK_AXIS = "tasks"
# "all" or a number: the devices to split tasks over, also on a single CPU process
# (e.g. to check that a run on 8 simulated devices matches one on a single device).
ENV_MESH_DEVICES = "METALM_MESH_DEVICES"


def task_mesh(num_tasks: int, devices=None) -> jsharding.Mesh:
  """A 1-D mesh over as many devices as evenly divide ``num_tasks``.

  Args:
    num_tasks: the meta-batch size T.
    devices: candidate devices; if None, all of ``jax.devices()`` on accelerators and in
      multi-process runs, and one device on a single CPU process, whose several
      "devices" (forced with XLA_FLAGS) share the same cores, so splitting tasks over
      them only adds collectives. ``$METALM_MESH_DEVICES`` (``all`` or a count)
      overrides this choice.
  """
  if devices is None:
    devices = _default_devices()
  devices = list(devices)
  used = max(d for d in range(1, len(devices) + 1) if num_tasks % d == 0)
  return jsharding.Mesh(np.array(devices[:used]), (TASK_AXIS,))


def _default_devices():
  wanted = os.environ.get(ENV_MESH_DEVICES, "").strip()
  if wanted == "all":
    return jax.devices()
  if wanted:
    if not wanted.isdigit() or not 1 <= int(wanted) <= jax.device_count():
      raise ValueError(f"{ENV_MESH_DEVICES}={wanted!r}: use 'all' or a number of devices "
                       f"from 1 to {jax.device_count()}.")
    return jax.devices()[:int(wanted)]
  single_cpu = jax.default_backend() == "cpu" and jax.process_count() == 1
  return jax.devices()[:1] if single_cpu else jax.devices()


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
