"""The training loop: one jitted, donated step; logs, checkpoints, exact resume.

``run`` drives any step (the multitask trainer, ``metalm.train.multitask``, calls it
too); ``train`` is the meta-learning entry point built on it.

Every random draw of step k derives from ``(config.seed, k)``, so a run resumed from
a checkpoint at step k continues bit for bit as if it had never stopped.
"""

import functools
import json
import os
import signal
import threading
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import ml_collections
import numpy as np
import optax
from absl import logging

from metalm import types, validate
from metalm.data import episodic
from metalm.meta import base
from metalm.tools import compute
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
              sampler, *, meta_batch_size: int, seed: int, mesh=None, task_chunk: int = 0):
  """The jitted, donated meta step.

  With an in-jit ``types.TaskSampler`` it is ``step(train_state)`` and samples the
  tasks of step k from ``(seed, k)``; with a host-side sampler (anything with
  ``batch(step, num_tasks)``, e.g. ``data.episodic``) it is
  ``step(train_state, tasks)``. With a ``mesh`` (see ``sharding.task_mesh``) the
  tasks are split over its devices; the train state must then be replicated on it.
  ``task_chunk`` is ``base.batched_outer_loss``'s.

  Returns:
    ``step(...) -> (train_state, metrics)``.
  """
  data_key, step_key = jax.random.split(jax.random.fold_in(jax.random.key(seed), 1))

  def step_on(train_state: base.MetaTrainState, tasks: types.TaskBatch):
    if mesh is not None:
      tasks = sharding.shard_tasks(tasks, mesh)
    key = jax.random.fold_in(step_key, train_state.step)
    return base.meta_step(learner, outer_tx, train_state, tasks, key, task_chunk=task_chunk)

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
    hooks: Sequence[Callable[[int, Any], None]] = (),
) -> base.MetaTrainState:
  """Meta-trains for ``config.num_steps`` steps, resuming from ``workdir`` if possible.

  Args:
    config: uses ``seed``, ``num_steps``, ``meta_batch_size``, ``log_every``,
      ``checkpoint_every``, ``max_checkpoints`` and, if present, ``task_chunk``.
    workdir: holds ``checkpoints/`` and ``metrics.jsonl``.
    learner: the meta-learner.
    outer_tx: the outer optimizer.
    sampler: an in-jit ``types.TaskSampler``, or a host-side sampler with
      ``batch(step, num_tasks)`` whose batches are prefetched on a thread.
    hooks: called as ``hook(step, state)`` after every step.

  Returns:
    The final train state.

  Raises:
    FloatingPointError: a step had a non-finite loss or gradient; the state and the
      checkpoints keep the last finite step.
    SystemExit: on SIGTERM / SIGINT, after writing a checkpoint.
  """
  check_loop_fields(config)
  validate.integer(config.get("meta_batch_size"), "config.meta_batch_size", minimum=1)
  task_chunk = validate.integer(config.get("task_chunk", 0), "config.task_chunk", minimum=0)
  mesh = sharding.task_mesh(config.meta_batch_size)
  if task_chunk and mesh.size > 1:
    raise ValueError(f"config.task_chunk={task_chunk} runs the tasks in turn on one "
                     f"device, but the meta-batch is split over {mesh.size} devices; set "
                     "config.task_chunk=0 (or METALM_MESH_DEVICES=1).")
  step_fn = make_step(learner, outer_tx, sampler,
                      meta_batch_size=config.meta_batch_size, seed=config.seed,
                      mesh=mesh, task_chunk=task_chunk)
  batches = None
  if not isinstance(sampler, types.TaskSampler):
    # The tasks of the update that takes state.step from k to k+1 are those of step k.
    batches = functools.partial(
        _prefetch, sampler, config.meta_batch_size, config.num_steps,
        sharding.task_sharding(mesh))
  return run(
      config, workdir,
      init=functools.partial(base.init_train_state, learner, outer_tx),
      step_fn=step_fn, batches=batches,
      place=functools.partial(sharding.replicate, mesh=mesh), hooks=hooks,
      describe=(f"the meta step, {config.meta_batch_size} tasks per step over "
                f"{mesh.size} device(s)"))


def run(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    init: Callable[[types.PRNGKey], Any],
    step_fn: Callable[..., tuple[Any, dict]],
    batches: Callable[[int], Iterator[tuple[int, Any]]] | None = None,
    place: Callable[[Any], Any] | None = None,
    hooks: Sequence[Callable[[int, Any], None]] = (),
    describe: str = "the step",
):
  """Any jitted step from ``state.step`` to ``config.num_steps``, with exact resume.

  The loop of every metalm experiment (meta-learning and multitask alike): restores the
  latest checkpoint in ``workdir`` (or calls ``init``), compiles ``step_fn`` once, logs
  ``metrics.jsonl`` and console progress (steps/s, ETA) every ``config.log_every``
  steps, checkpoints every ``config.checkpoint_every`` steps, at the end and on
  SIGTERM / SIGINT (then exits), and stops on the first non-finite step, naming it.
  Resume is exact when ``step_fn`` and ``batches`` derive all randomness from
  ``(config.seed, step)``.

  Args:
    config: uses ``seed``, ``num_steps``, ``log_every``, ``checkpoint_every`` and
      ``max_checkpoints``; saved with every checkpoint, and compared on resume.
    workdir: holds ``checkpoints/`` and ``metrics.jsonl``.
    init: ``init(key) -> state``, a pytree with an integer ``state.step``; called with
      ``fold_in(key(config.seed), 0)``.
    step_fn: ``step_fn(state[, batch]) -> (state, metrics)``, jitted (AOT-compiled here);
      ``metrics`` holds scalars, among them ``loss`` and the boolean ``finite``.
    batches: ``batches(first_step)`` -> iterator of ``(step, batch)`` from
      ``first_step`` on (e.g. ``episodic.prefetch``; closed at the end if it has
      ``close``); None when ``step_fn`` takes only the state.
    place: puts the initial or restored state on devices (e.g. replicates it on a mesh).
    hooks: called as ``hook(step, state)`` after every step.
    describe: what is being compiled, for the log.

  Returns:
    The final state.

  Raises:
    FloatingPointError: a step had a non-finite loss or gradient; the state and the
      checkpoints keep the last finite step.
    SystemExit: on SIGTERM / SIGINT, after writing a checkpoint.
    checkpoint.CheckpointWriteError: a checkpoint or the metrics could not be written
      (e.g. a full disk); the message names the last complete checkpoint, which is
      intact.
    checkpoint.IncompatibleCheckpointError: ``workdir`` holds a run of another config
      or model.
  """
  check_loop_fields(config)
  metrics.quiet_library_logs()
  init_key = jax.random.fold_in(jax.random.key(config.seed), 0)
  ckpt = checkpoint.Checkpointer(workdir, config, max_to_keep=config.max_checkpoints)
  if ckpt.latest_step() is not None:
    state = ckpt.restore(jax.eval_shape(init, init_key))
  else:
    state = init(init_key)
  if place is not None:
    state = place(state)
  first_step = int(state.step)
  writer = metrics.MetricWriter(workdir, resume_step=first_step)
  if first_step >= config.num_steps:
    ckpt.close()
    return state

  stream = None
  try:
    stream = None if batches is None else batches(first_step)
    pending = None if stream is None else next(stream)
    compile_start = time.perf_counter()
    compiled = step_fn.lower(state, *([] if pending is None else [pending[1]])).compile()
    costs = compute.compiled_costs(compiled)
    flops, accessed = costs.get("flops", 0.0), costs.get("bytes accessed", 0.0)
    lower_bound = compute.has_costly_loops(compiled)
    logging.info("Compiled %s in %.1fs (XLA estimate per step: %s%.3g GFLOP, %.3g MB "
                 "accessed%s); training from step %d to %d.", describe,
                 time.perf_counter() - compile_start, "at least " if lower_bound else "",
                 flops / 1e9, accessed / 1e6,
                 ", loop bodies counted once" if lower_bound else "",
                 first_step, config.num_steps)
    progress = metrics.Progress(first_step, config.num_steps)
    watts, train_start = device_watts(), time.perf_counter()
    window = []
    with _StopSignals() as stop:
      for step in range(first_step + 1, config.num_steps + 1):
        if stream is None:
          state, step_metrics = compiled(state)
        else:
          _, batch = pending if pending is not None else next(stream)
          pending = None
          state, step_metrics = compiled(state, batch)
        if window:
          # At most two steps in flight: a stop signal is acted on within a step or
          # two instead of after every step already dispatched.
          jax.block_until_ready(window[-1]["loss"])
        window.append(step_metrics)
        for hook in hooks:
          hook(step, state)
        if step % config.log_every == 0 or step == config.num_steps:
          try:
            _log(window, step, writer, progress, total_flops=flops * step)
          except OSError as e:
            raise ckpt.write_error(f"the metrics of step {step}", e) from e
          window = []
        stopping = stop.signum is not None
        if step % config.checkpoint_every == 0 or step == config.num_steps or stopping:
          ckpt.save(step, state)
        if stopping or step == config.num_steps:
          _write_compute(workdir, flops=flops, accessed=accessed,
                         lower_bound=lower_bound, step=step,
                         steps_here=step - first_step,
                         seconds_here=time.perf_counter() - train_start, watts=watts)
        if stopping:
          logging.warning(
              "Stopped by signal %d at step %d; checkpoint saved in %s. Re-run the "
              "same command to resume.", stop.signum, step, ckpt.directory)
          raise SystemExit(128 + stop.signum)
  finally:
    ckpt.close()
    if stream is not None and hasattr(stream, "close"):
      stream.close()
  return state


def check_loop_fields(config: ml_collections.ConfigDict) -> None:
  """Raises a ValueError naming the first loop field of ``config`` out of range."""
  for name, minimum in (("seed", 0), ("num_steps", 0), ("log_every", 1),
                        ("checkpoint_every", 1), ("max_checkpoints", 1)):
    if name not in config:
      raise ValueError(f"config.{name} is missing; the training loop needs it.")
    validate.integer(config[name], f"config.{name}", minimum=minimum)


def _prefetch(sampler, num_tasks, num_steps, device_sharding, first_step):
  return episodic.prefetch(sampler, first_step, num_tasks,
                           num_steps=num_steps - first_step, sharding=device_sharding)


ENV_DEVICE_WATTS = "METALM_DEVICE_WATTS"


def device_watts() -> float:
  """The stated average device power for energy estimates (``$METALM_DEVICE_WATTS``)."""
  value = os.environ.get(ENV_DEVICE_WATTS, "0")
  try:
    return validate.real(float(value), ENV_DEVICE_WATTS, minimum=0.0)
  except ValueError:
    raise ValueError(f"{ENV_DEVICE_WATTS}={value!r}: give the device's average power in "
                     "watts, e.g. 300 for a GPU board or a CPU's TDP.") from None


def _write_compute(workdir, *, flops, accessed, lower_bound, step, steps_here,
                   seconds_here, watts):
  """``workdir/compute.json``: XLA's per-step estimates (``flops_are_lower_bound`` when
  the step's loops do products, as XLA counts a loop body once), the run's total FLOPs, and the
  steps, seconds and (at a stated power) energy of this process's part of the run."""
  if jax.process_index() != 0:
    return
  here = {"steps": steps_here, "seconds": seconds_here,
          "flops_per_second": flops * steps_here / max(seconds_here, 1e-9)}
  if watts:
    here.update(power_watts=watts, energy_joules=watts * seconds_here,
                energy_kwh=watts * seconds_here / 3.6e6)
  summary = {"flops_per_step": flops, "bytes_accessed_per_step": accessed,
             "flops_are_lower_bound": lower_bound, "step": step,
             "total_flops": flops * step, "this_process": here}
  with open(os.path.join(workdir, "compute.json"), "w") as f:
    json.dump(summary, f, indent=2)


def compute_summary(workdir: str) -> dict:
  """The run's ``compute.json`` (empty if the run has not trained)."""
  path = os.path.join(workdir, "compute.json")
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _log(window, step, writer, progress, *, total_flops=0.0):
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
  writer.write(step, {**scalars, "steps_per_sec": rate, "total_flops": total_flops})
  progress.log(step, scalars, rate)
