"""Orbax checkpoints of the train state and its config, with exact resume.

Saving is atomic (orbax writes into a temporary directory and renames it when
complete), so a process killed while saving leaves the previous checkpoints as they
were. Restoring walks back from the latest checkpoint: one that cannot be read
(truncated or corrupted files) is moved aside to ``workdir/checkpoints_unreadable/``
with a warning and the one before it is used; one written with another config or
model is refused, naming what differs.
"""

import json
import os
import shutil
import time
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

# Config fields that may change between a run and its resumption: logging, evaluation,
# the length of the run (schedules take their own step counts, never num_steps), and
# how many tasks run at a time (memory, not the meta-gradient beyond rounding).
RESUMABLE_CHANGES = ("log_every", "checkpoint_every", "max_checkpoints", "eval",
                     "num_steps", "task_chunk")
UNREADABLE_DIR = "checkpoints_unreadable"


class IncompatibleCheckpointError(ValueError):
  """The checkpoint was written by another config or model."""


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (full disk, permissions)."""


class _Unreadable(Exception):
  """A checkpoint's files cannot be read."""


def config_to_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.to_json())


def _differences(saved, current, prefix="config"):
  if isinstance(saved, dict) and isinstance(current, dict):
    out = []
    for name in sorted(set(saved) | set(current)):
      if prefix == "config" and name in RESUMABLE_CHANGES:
        continue
      out += _differences(saved.get(name), current.get(name), f"{prefix}.{name}")
    return out
  return [] if saved == current else [f"{prefix}: saved {saved!r}, now {current!r}"]


def _path_name(path) -> str:
  parts = []
  for entry in path:
    for attribute in ("name", "key", "idx"):
      if hasattr(entry, attribute):
        parts.append(str(getattr(entry, attribute)))
        break
    else:
      parts.append(str(entry))
  return "/".join(parts)


def _leaves(tree) -> dict[str, tuple[tuple[int, ...], str]]:
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {_path_name(path): (tuple(leaf.shape), str(leaf.dtype))
          for path, leaf in flat if hasattr(leaf, "shape")}


def structure_differences(saved_tree, abstract_tree, *, limit: int = 8) -> list[str]:
  """Names the arrays that are missing, extra, or of another shape or dtype."""
  saved, now = _leaves(saved_tree), _leaves(abstract_tree)
  out = [f"{name}: in the checkpoint, not in this model/optimizer"
         for name in sorted(set(saved) - set(now))]
  out += [f"{name}: in this model/optimizer, not in the checkpoint"
          for name in sorted(set(now) - set(saved))]
  for name in sorted(set(saved) & set(now)):
    (saved_shape, saved_dtype), (shape, dtype) = saved[name], now[name]
    if saved_shape != shape:
      out.append(f"{name}: saved shape {saved_shape}, now {shape}")
    elif saved_dtype != dtype:
      out.append(f"{name}: saved dtype {saved_dtype}, now {dtype}")
  if len(out) > limit:
    out = out[:limit] + [f"... and {len(out) - limit} more"]
  return out


class Checkpointer:
  """Saves ``{state, config}`` under ``workdir/checkpoints`` when asked.

  Restoring refuses a checkpoint written with a different config, and names each
  differing field; it falls back past unreadable checkpoints (see the module doc).
  """

  def __init__(self, workdir: str, config: ml_collections.ConfigDict, *,
               max_to_keep: int = 3):
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, "checkpoints")
    self.config = config_to_json(config)
    self._last_saved = None
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True
        ),
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state) -> None:
    """Starts writing ``state`` as step ``step`` (in the background).

    Raises:
      CheckpointWriteError: this or the previous save failed (e.g. a full disk); the
        checkpoints completed before it are intact.
    """
    if step in self.manager.all_steps():
      return
    self._last_saved = step
    try:
      self.manager.save(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardSave(state),
              config=ocp.args.JsonSave(self.config)),
          force=True,
      )
    except Exception as e:  # Orbax wraps I/O errors from its writer threads.
      raise self._write_error(step, e) from e

  def wait(self) -> None:
    """Blocks until the last save is complete; raises CheckpointWriteError if it failed."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:
      raise self._write_error(self._last_saved, e) from e

  def _write_error(self, step, error) -> CheckpointWriteError:
    return self.write_error(f"the checkpoint of step {step}", error)

  def write_error(self, what: str, error: Exception) -> CheckpointWriteError:
    """The error for a failed write of ``what`` in the run's workdir."""
    complete = _complete_steps(self.directory)
    kept = (f"The last complete checkpoint, step {complete[-1]} in {self.directory}, "
            "is intact" if complete else "No checkpoint was completed before it")
    return CheckpointWriteError(
        f"Could not write {what} in {self.workdir} ({type(error).__name__}: {error}). "
        f"{kept}. Free disk space (or fix the directory's permissions) and re-run the "
        "same command to resume from it.")

  def restore(self, abstract_state):
    """Restores the latest readable checkpoint into the structure of ``abstract_state``.

    Raises:
      IncompatibleCheckpointError: the checkpoint was written with another config or
        for another model / optimizer; the message names what differs.
      RuntimeError: no checkpoint in the directory can be read.
    """
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state = self._restore_step(step, abstract_state)
      except _Unreadable as e:
        moved = self._move_aside(step)
        logging.warning("Checkpoint %s is unreadable (%s); moved it to %s and falling "
                        "back to the previous checkpoint.",
                        os.path.join(self.directory, str(step)), e, moved)
        continue
      logging.info("Resumed from %s.", os.path.join(self.directory, str(step)))
      return state
    raise RuntimeError(
        f"No readable checkpoint in {self.directory}; the unreadable ones were moved to "
        f"{os.path.join(self.workdir, UNREADABLE_DIR)}. Re-run to start from scratch, or "
        "use a new --workdir.")

  def _restore_step(self, step: int, abstract_state):
    where = os.path.join(self.directory, str(step))
    try:
      saved_config = self.manager.restore(
          step, args=ocp.args.Composite(config=ocp.args.JsonRestore())).config
      metadata = ocp.StandardCheckpointer().metadata(os.path.join(where, "state"))
    except Exception as e:  # Orbax raises many types for unreadable files.
      raise _Unreadable(f"{type(e).__name__}: {e}") from e
    differences = _differences(saved_config, self.config)
    if differences:
      raise IncompatibleCheckpointError(
          f"The checkpoint {where} was written with a different config: "
          + "; ".join(differences)
          + ". Re-run with the saved config (stored in each checkpoint's 'config' "
          "item) to resume, or choose a new --workdir to start a new run.")
    saved_tree = getattr(getattr(metadata, "item_metadata", metadata), "tree", None)
    if saved_tree is not None:
      differences = structure_differences(saved_tree, abstract_state)
      if differences:
        raise IncompatibleCheckpointError(
            f"The checkpoint {where} holds another model or optimizer state: "
            + "; ".join(differences)
            + ". Use the code and config it was written with, or a new --workdir.")
    try:
      return self.manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
      ).state
    except Exception as e:
      raise _Unreadable(f"{type(e).__name__}: {e}") from e

  def _move_aside(self, step: int) -> str:
    target_dir = os.path.join(self.workdir, UNREADABLE_DIR)
    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.move(os.path.join(self.directory, str(step)), target)
    self.manager.reload()
    return target

  def close(self):
    try:
      self.wait()
    finally:
      self.manager.close()


def _complete_steps(directory: str) -> list[int]:
  """Steps whose checkpoint directory was committed (renamed from its temporary name)."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory)
                if name.isdigit() and os.path.isdir(os.path.join(directory, name)))
