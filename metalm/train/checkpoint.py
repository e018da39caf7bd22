"""Orbax checkpoints of the train state and its config, with exact resume."""

import json
import os
from typing import Any

import ml_collections
import orbax.checkpoint as ocp
from absl import logging

# Config fields that may change between a run and its resumption: logging, evaluation,
# and the length of the run (schedules take their own step counts, never num_steps).
RESUMABLE_CHANGES = ("log_every", "checkpoint_every", "max_checkpoints", "eval",
                     "num_steps")


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


class Checkpointer:
  """Saves ``{state, config}`` under ``workdir/checkpoints`` when asked.

  Restoring refuses a checkpoint written with a different config, and names each
  differing field.
  """

  def __init__(self, workdir: str, config: ml_collections.ConfigDict, *,
               max_to_keep: int = 3):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.config = config_to_json(config)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True
        ),
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state) -> None:
    if step in self.manager.all_steps():
      return
    self.manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(self.config)
        ),
        force=True,
    )

  def restore(self, abstract_state):
    """Restores the latest checkpoint into the structure of ``abstract_state``."""
    step = self.manager.latest_step()
    where = os.path.join(self.directory, str(step))
    try:
      saved_config = self.manager.restore(
          step, args=ocp.args.Composite(config=ocp.args.JsonRestore())
      ).config
    except Exception as e:  # Orbax raises many types for unreadable files.
      raise RuntimeError(
          f"Checkpoint {where} is unreadable ({type(e).__name__}: {e}). Move that "
          "directory aside to resume from the previous checkpoint, or use a new "
          "--workdir."
      ) from e
    differences = _differences(saved_config, self.config)
    if differences:
      raise ValueError(
          f"The checkpoint in {self.directory} was written with a different config: "
          + "; ".join(differences)
          + ". Re-run with the saved config (stored in each checkpoint's 'config' "
          "item) to resume, or choose a new --workdir to start a new run."
      )
    try:
      restored = self.manager.restore(
          step,
          args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)),
      )
    except Exception as e:
      raise RuntimeError(
          f"Checkpoint {where} does not match this model or optimizer "
          f"({type(e).__name__}: {e}). Use the config it was written with, or a new "
          "--workdir."
      ) from e
    logging.info("Resumed from %s.", where)
    return restored.state

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()

