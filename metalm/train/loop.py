"""The meta-training loop: one jitted, donated step; logs, checkpoints, exact resume.

Every random draw of step k derives from ``(config.seed, k)``, so a run resumed from
a checkpoint at step k continues bit for bit as if it had never stopped.
"""

import functools
import signal
import threading
import time
from typing import Callable, Sequence

import jax
import ml_collections
import numpy as np
import optax
from absl import logging

from metalm import types
from metalm.data import episodic
from metalm.meta import base
from metalm.train import checkpoint, metrics, sharding


class _StopSignals:
  """Turns SIGTERM / SIGINT into a flag the loop checks between steps."""

  def __init__(self):
    self.signum = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.signum = signum

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def make_step(learner: base.MetaLearner, outer_tx: optax.GradientTransformation,
              sampler, *, meta_batch_size: int, seed: int, mesh=None):
  """The jitted, donated meta step.

  With an in-jit ``types.TaskSampler`` it is ``step(train_state)`` and samples the
  tasks of step k from ``(seed, k)``; with a host-side sampler (anything with
  ``batch(step, num_tasks)``, e.g. ``data.episodic``) it is
  ``step(train_state, tasks)``. With a ``mesh`` (see ``sharding.task_mesh``) the
  tasks are split over its devices; the train state must then be replicated on it.

  Returns:
    ``step(...) -> (train_state, metrics)``.
  """
  data_key, step_key = jax.random.split(jax.random.fold_in(jax.random.key(seed), 1))

  def step_on(train_state: base.MetaTrainState, tasks: types.TaskBatch):
    if mesh is not None:
      tasks = sharding.shard_tasks(tasks, mesh)
    key = jax.random.fold_in(step_key, train_state.step)
    return base.meta_step(learner, outer_tx, train_state, tasks, key)

  if not isinstance(sampler, types.TaskSampler):
    return jax.jit(step_on, donate_argnums=0)

  @functools.partial(jax.jit, donate_argnums=0)
  def step(train_state: base.MetaTrainState):
    key = jax.random.fold_in(data_key, train_state.step)
    return step_on(train_state, sampler.sample(key, meta_batch_size))

  return step


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    learner: base.MetaLearner,
    outer_tx: optax.GradientTransformation,
    sampler,
    hooks: Sequence[Callable[[int], None]] = (),
) -> base.MetaTrainState:
  """Meta-trains for ``config.num_steps`` steps, resuming from ``workdir`` if possible.

  Args:
    config: uses ``seed``, ``num_steps``, ``meta_batch_size``, ``log_every``,
      ``checkpoint_every`` and ``max_checkpoints``.
    workdir: holds ``checkpoints/`` and ``metrics.jsonl``.
    learner: the meta-learner.
    outer_tx: the outer optimizer.
    sampler: an in-jit ``types.TaskSampler``, or a host-side sampler with
      ``batch(step, num_tasks)`` whose batches are prefetched on a thread.
    hooks: called with the step number after every step.

  Returns:
    The final train state.

  Raises:
    FloatingPointError: a step had a non-finite loss or gradient; the state and the
      checkpoints keep the last finite step.
    SystemExit: on SIGTERM / SIGINT, after writing a checkpoint.
  """
  metrics.quiet_library_logs()
  init_key = jax.random.fold_in(jax.random.key(config.seed), 0)
  init = functools.partial(base.init_train_state, learner, outer_tx)
  ckpt = checkpoint.Checkpointer(workdir, config, max_to_keep=config.max_checkpoints)
  if ckpt.latest_step() is not None:
    state = ckpt.restore(jax.eval_shape(init, init_key))
  else:
    state = init(init_key)
  mesh = sharding.task_mesh(config.meta_batch_size)
  state = sharding.replicate(state, mesh)
  first_step = int(state.step)
  writer = metrics.MetricWriter(workdir, resume_step=first_step)
  step_fn = make_step(learner, outer_tx, sampler,
                      meta_batch_size=config.meta_batch_size, seed=config.seed,
                      mesh=mesh)

  batches = _host_batches(sampler, mesh, first_step, config)
  example = () if batches is None else (sampler.batch(first_step, config.meta_batch_size),)
  compile_start = time.perf_counter()
  step_fn = step_fn.lower(state, *example).compile()
  logging.info("Compiled the meta step in %.1fs; training from step %d to %d with "
               "%d tasks per step over %d device(s).", time.perf_counter() - compile_start,
               first_step, config.num_steps, config.meta_batch_size, mesh.size)
  progress = metrics.Progress(first_step, config.num_steps)
  window = []
  try:
    with _StopSignals() as stop:
      for step in range(first_step + 1, config.num_steps + 1):
        if batches is None:
          state, step_metrics = step_fn(state)
        else:
          _, tasks = next(batches)
          state, step_metrics = step_fn(state, tasks)
        window.append(step_metrics)
        for hook in hooks:
          hook(step)
        if step % config.log_every == 0 or step == config.num_steps:
          _log(window, step, writer, progress)
          window = []
        stopping = stop.signum is not None
        if step % config.checkpoint_every == 0 or step == config.num_steps or stopping:
          ckpt.save(step, state)
        if stopping:
          logging.warning(
              "Stopped by signal %d at step %d; checkpoint saved in %s. Re-run the "
              "same command to resume.", stop.signum, step, ckpt.directory)
          raise SystemExit(128 + stop.signum)
  finally:
    ckpt.close()
    if batches is not None:
      batches.close()
  return state


def _host_batches(sampler, mesh, first_step, config):
  """Prefetched ``(step, tasks)`` from a host-side sampler; None for in-jit samplers."""
  if isinstance(sampler, types.TaskSampler):
    return None
  # The tasks of the update that takes state.step from k to k+1 are those of step k.
  return episodic.prefetch(
      sampler, first_step, config.meta_batch_size,
      num_steps=config.num_steps - first_step,
      sharding=sharding.task_sharding(mesh),
  )


def _log(window, step, writer, progress):
  history = jax.device_get(window)
  finite = np.array([m["finite"] for m in history])
  if not finite.all():
    bad = step - len(history) + 1 + int(np.argmin(finite))
    loss = history[int(np.argmin(finite))]["loss"]
    raise FloatingPointError(
        f"Non-finite loss or gradient at step {bad} (loss={loss}); the update was "
        "skipped and the checkpoints hold only finite steps. Lower the learning "
        "rates, or check the data, then re-run to resume from the last checkpoint."
    )
  scalars = {k: float(np.mean([m[k] for m in history]))
             for k in history[0] if k != "finite"}
  rate = progress.rate(step)
  writer.write(step, {**scalars, "steps_per_sec": rate})
  progress.log(step, scalars, rate)
