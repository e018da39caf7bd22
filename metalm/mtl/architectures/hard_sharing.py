"""Hard parameter sharing: one shared trunk, one head per task.

Reference: Caruana, 1997 (Machine Learning 28:41-75); survey by Ruder, 2017, arXiv:1706.05098.
"""

from typing import Mapping, Sequence

import flax.linen as nn
import jax

from metalm.mtl import base
from metalm.mtl.architectures import components

TASK = base.TASK_KEY


def hard_sharing(
    trunk: nn.Module | Sequence[nn.Module],
    heads: nn.Module | Mapping[str, nn.Module],
    example_shape: Sequence[int],
    *,
    tasks: Sequence[str] | None = None,
) -> base.MultiTaskModel:
  """Shared trunk + per-task heads.

  Params: ``{"trunk": ..., "task": {name: {"head": ...}}}``; ``state`` has the same layout.
  ``encode`` returns the trunk's features; ``decode`` applies each head to them.

  Args:
    trunk: a Linen module, or a sequence of stage modules applied in turn.
    heads: head modules keyed by task name, or one module copied for each of ``tasks``.
    example_shape: shape of one input batch, used to create the parameters.
    tasks: task names (needed only when ``heads`` is one module).
  """
  trunk_fns = components.chain(trunk)
  head_fns = components.task_heads(heads, tasks)
  names = tuple(head_fns)

  def init(key):
    trunk_key, *head_keys = jax.random.split(key, 1 + len(names))
    trunk_params, trunk_state, rep = trunk_fns.init(
        trunk_key, components.example(example_shape))
    params = {"trunk": trunk_params, TASK: {}}
    state = {"trunk": trunk_state, TASK: {}}
    for name, head_key in zip(names, head_keys, strict=True):
      head_params, head_state, _ = head_fns[name].init(head_key, rep)
      params[TASK][name] = {"head": head_params}
      state[TASK][name] = {"head": head_state}
    return params, state

  def encode(params, state, x, *, train: bool, key=None):
    rep, trunk_state = trunk_fns.apply(
        params["trunk"], state["trunk"], x, train=train, key=key)
    return rep, {**state, "trunk": trunk_state}

  def decode(params, state, rep, *, train: bool, key=None):
    def one(name, task_params, task_state, task_key):
      out, head_state = head_fns[name].apply(
          task_params["head"], task_state["head"], rep, train=train, key=task_key)
      return out, {"head": head_state}

    return components.per_task(names, one, params, state, key)

  return base.MultiTaskModel(init, encode, decode, names)
