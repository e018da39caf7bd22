"""Cross-stitch networks: one trunk column per task, mixed by learned units after each stage.

Reference: Misra, Shrivastava, Gupta, Hebert, 2016, arXiv:1604.03539.
"""

from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from metalm.mtl import base
from metalm.mtl.architectures import components

TASK = base.TASK_KEY


def init_stitch(num_tasks: int, channels: int, self_weight: float) -> jax.Array:
  """``alpha_TxTxC``: ``self_weight`` on the diagonal, the rest spread evenly (rows sum to 1)."""
  if num_tasks == 1:
    return jnp.ones((1, 1, channels), jnp.float32)
  other = (1.0 - self_weight) / (num_tasks - 1)
  eye_TxT = jnp.eye(num_tasks, dtype=jnp.float32)
  alpha_TxT = self_weight * eye_TxT + other * (1.0 - eye_TxT)
  return jnp.repeat(alpha_TxT[:, :, None], channels, axis=2)


def stitch(alpha_TxTxC: jax.Array, features_T: jax.Array) -> jax.Array:
  """``out[t] = sum_s alpha[t, s] * features[s]``, channel by channel (the last axis)."""
  return jnp.einsum("tsc,s...c->t...c", alpha_TxTxC, features_T)


def cross_stitch(
    trunk: Sequence[nn.Module],
    heads: nn.Module | Mapping[str, nn.Module],
    example_shape: Sequence[int],
    *,
    tasks: Sequence[str] | None = None,
    self_weight: float = 0.9,
) -> base.MultiTaskModel:
  """One column of ``trunk`` stages per task, a cross-stitch unit after every stage.

  The columns and the stitch units are shared parameters even though each column is
  indexed by a task: once stitched, every column feeds every task's loss. So ``encode``
  runs all columns with their stitches and returns each task's stitched features;
  ``decode`` applies the heads, the only task-specific parameters.

  Params: ``{"columns": {name: {"stage_j": ...}}, "stitch": {"stage_j": alpha_TxTxC},
  "task": {name: {"head": ...}}}``. ``rep`` is a dict of features keyed by task name.

  Args:
    trunk: the stage modules of one column (a single module is a one-stage column).
    heads: head modules keyed by task name, or one module copied for each of ``tasks``.
    example_shape: shape of one input batch, used to create the parameters.
    tasks: task names (needed only when ``heads`` is one module).
    self_weight: initial weight of a column on itself; Misra et al. start at 0.9
      (near identity); 1.0 starts as independent networks.
  """
  stages = [trunk] if isinstance(trunk, nn.Module) else list(trunk)
  stage_fns = [components.from_module(m) for m in stages]
  stage_names = components.stage_names(len(stages))
  head_fns = components.task_heads(heads, tasks)
  names = tuple(head_fns)

  def init(key):
    column_key, head_key = jax.random.split(key)
    columns, column_state, stitches = {}, {}, {}
    xs = {name: components.example(example_shape) for name in names}
    for stage, part, stage_key in zip(stage_names, stage_fns,
                                      components.split(column_key, len(stages)), strict=True):
      for name, task_key in zip(names, components.split(stage_key, len(names)), strict=True):
        p, s, xs[name] = part.init(task_key, xs[name])
        columns.setdefault(name, {})[stage] = p
        column_state.setdefault(name, {})[stage] = s
      stitches[stage] = init_stitch(len(names), xs[names[0]].shape[-1], self_weight)
    params = {"columns": columns, "stitch": stitches, TASK: {}}
    state = {"columns": column_state, TASK: {}}
    for name, task_key in zip(names, components.split(head_key, len(names)), strict=True):
      p, s, _ = head_fns[name].init(task_key, xs[name])
      params[TASK][name] = {"head": p}
      state[TASK][name] = {"head": s}
    return params, state

  def encode(params, state, x, *, train: bool, key=None):
    xs = {name: x for name in names}
    new_state = {name: {} for name in names}
    for stage, part, stage_key in zip(stage_names, stage_fns,
                                      components.split(key, len(stages)), strict=True):
      for name, task_key in zip(names, components.split(stage_key, len(names)), strict=True):
        xs[name], new_state[name][stage] = part.apply(
            params["columns"][name][stage], state["columns"][name][stage], xs[name],
            train=train, key=task_key)
      stitched_T = stitch(params["stitch"][stage], jnp.stack([xs[n] for n in names]))
      xs = {name: stitched_T[t] for t, name in enumerate(names)}
    return xs, {**state, "columns": new_state}

  def decode(params, state, rep, *, train: bool, key=None):
    def one(name, task_params, task_state, task_key):
      out, head_state = head_fns[name].apply(
          task_params["head"], task_state["head"], rep[name], train=train, key=task_key)
      return out, {"head": head_state}

    return components.per_task(names, one, params, state, key)

  return base.MultiTaskModel(init, encode, decode, names)
