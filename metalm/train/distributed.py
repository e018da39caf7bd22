"""Multi-process (multi-host) runs through ``jax.distributed``.

Every process runs the same program over one global device mesh; the meta-batch of
tasks is split over all devices of all processes and XLA all-reduces the meta-gradient
across them. Launch one process per host (or several on one machine for testing) with

  METALM_COORDINATOR_ADDRESS=host0:12355 METALM_NUM_PROCESSES=2 METALM_PROCESS_ID=<i> \
      python -m experiments.<family>.main --config=... --workdir=...

Cluster managers that JAX detects by itself (SLURM, Open MPI, Cloud TPU) need only
``METALM_DISTRIBUTED=auto``. Host-side episode samplers are deterministic in
``(seed, step)``, so every process builds the same global batch and places its own
devices' part of it.
"""

import os

import jax

ENV_COORDINATOR = "METALM_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "METALM_NUM_PROCESSES"
ENV_PROCESS_ID = "METALM_PROCESS_ID"
ENV_AUTO = "METALM_DISTRIBUTED"


def initialize_from_env(environ=None) -> bool:
  """Joins the multi-process run described by the environment, if any.

  Call it first in a program, before anything touches a JAX device.

  Returns:
    True when this process joined a multi-process run.

  Raises:
    ValueError: the variables are incomplete or not numbers.
  """
  environ = os.environ if environ is None else environ
  if environ.get(ENV_AUTO) == "auto":
    _use_cpu_collectives()
    jax.distributed.initialize()
    return True
  names = (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID)
  given = [n for n in names if environ.get(n)]
  if not given:
    return False
  if len(given) != len(names):
    missing = sorted(set(names) - set(given))
    raise ValueError(f"Multi-process run: {given} set but {missing} missing; set all of "
                     f"{list(names)} (or {ENV_AUTO}=auto under a cluster manager).")
  try:
    num_processes, process_id = int(environ[ENV_NUM_PROCESSES]), int(environ[ENV_PROCESS_ID])
  except ValueError as e:
    raise ValueError(f"{ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} must be integers.") from e
  if not 0 <= process_id < num_processes:
    raise ValueError(f"{ENV_PROCESS_ID}={process_id} must lie in [0, {num_processes}).")
  _use_cpu_collectives()
  jax.distributed.initialize(environ[ENV_COORDINATOR], num_processes=num_processes,
                             process_id=process_id)
  return True


def _use_cpu_collectives():
  # CPU devices of different processes all-reduce through gloo; accelerators ignore it.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
