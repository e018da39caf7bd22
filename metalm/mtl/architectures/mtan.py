"""Multi-Task Attention Network: per-task soft attention over a shared trunk's stages.

Reference: Liu, Johns, Davison, 2019, arXiv:1803.10704.
"""

from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from metalm.mtl import base
from metalm.mtl.architectures import components

TASK = base.TASK_KEY


def match(prev: jax.Array, shared: jax.Array) -> jax.Array:
  """Brings the previous attended features to the layout of ``shared`` ([B, ..., C])."""
  if shared.ndim == 2:
    return prev.reshape(prev.shape[0], -1)
  if prev.ndim != shared.ndim:
    raise ValueError(f"MTAN cannot carry features of shape {prev.shape} to a stage with "
                     f"outputs of shape {shared.shape}.")
  window = []
  for p, s in zip(prev.shape[1:-1], shared.shape[1:-1], strict=True):
    if p % s:
      raise ValueError(f"MTAN needs stage resolutions that divide: {prev.shape} -> "
                       f"{shared.shape}.")
    window.append(p // s)
  if all(w == 1 for w in window):
    return prev
  return nn.max_pool(prev, tuple(window), strides=tuple(window))


class Attention(nn.Module):
  """Soft mask ``sigmoid(W2 relu(W1 [shared; prev]))`` applied to ``shared``.

  ``W1, W2`` act on the channel (last) axis: 1x1 convolutions on images, dense layers
  on vectors. ``prev`` is the task's attended features from the previous stage.

  Attributes:
    hidden: width of the first layer; None uses the stage's channel count.
  """

  hidden: int | None = None

  @nn.compact
  def __call__(self, inputs):
    shared, prev = inputs
    x = shared if prev is None else jnp.concatenate([shared, match(prev, shared)], axis=-1)
    x = nn.relu(nn.Dense(self.hidden or shared.shape[-1])(x))
    return nn.sigmoid(nn.Dense(shared.shape[-1])(x)) * shared


def mtan(
    trunk: Sequence[nn.Module],
    heads: nn.Module | Mapping[str, nn.Module],
    example_shape: Sequence[int],
    *,
    tasks: Sequence[str] | None = None,
    attention_hidden: int | None = None,
) -> base.MultiTaskModel:
  """Shared trunk stages; each task attends to every stage's output, then its head.

  ``encode`` runs the shared trunk and returns the tuple of all stage outputs (the
  attention modules read every stage). ``decode`` runs each task's attention chain and
  head. Unlike Liu et al.'s ResNet version, attended features go to the next stage's
  attention by max-pooling (or flattening) rather than through a conv block shared by
  the tasks, so every parameter after the trunk is task-specific.

  Params: ``{"trunk": {"stage_j": ...}, "task": {name: {"attention": {"stage_j": ...},
  "head": ...}}}``.

  Args:
    trunk: the shared stage modules; spatial resolutions must divide stage to stage.
    heads: head modules keyed by task name, or one module copied for each of ``tasks``.
    example_shape: shape of one input batch, used to create the parameters.
    tasks: task names (needed only when ``heads`` is one module).
    attention_hidden: width inside each attention module (None: the stage's channels).
  """
  stages = [trunk] if isinstance(trunk, nn.Module) else list(trunk)
  stage_fns = [components.from_module(m) for m in stages]
  stage_names = components.stage_names(len(stages))
  attention = components.from_module(Attention(attention_hidden))
  head_fns = components.task_heads(heads, tasks)
  names = tuple(head_fns)

  def init(key):
    trunk_key, task_key = jax.random.split(key)
    x = components.example(example_shape)
    trunk_params, trunk_state, rep = {}, {}, []
    for stage, part, stage_key in zip(stage_names, stage_fns,
                                      components.split(trunk_key, len(stages)), strict=True):
      trunk_params[stage], trunk_state[stage], x = part.init(stage_key, x)
      rep.append(x)
    params = {"trunk": trunk_params, TASK: {}}
    state = {"trunk": trunk_state, TASK: {}}
    for name, key_t in zip(names, components.split(task_key, len(names)), strict=True):
      head_key, *att_keys = components.split(key_t, len(stages) + 1)
      att_params, attended = {}, None
      for stage, shared, att_key in zip(stage_names, rep, att_keys, strict=True):
        att_params[stage], _, attended = attention.init(att_key, (shared, attended))
      head_params, head_state, _ = head_fns[name].init(head_key, attended)
      params[TASK][name] = {"attention": att_params, "head": head_params}
      state[TASK][name] = {"head": head_state}
    return params, state

  def encode(params, state, x, *, train: bool, key=None):
    rep, new_state = [], {}
    for stage, part, stage_key in zip(stage_names, stage_fns,
                                      components.split(key, len(stages)), strict=True):
      x, new_state[stage] = part.apply(
          params["trunk"][stage], state["trunk"][stage], x, train=train, key=stage_key)
      rep.append(x)
    return tuple(rep), {**state, "trunk": new_state}

  def decode(params, state, rep, *, train: bool, key=None):
    def one(name, task_params, task_state, task_key):
      attended = None
      for stage, shared in zip(stage_names, rep, strict=True):
        attended, _ = attention.apply(
            task_params["attention"][stage], {}, (shared, attended), train=train)
      out, head_state = head_fns[name].apply(
          task_params["head"], task_state["head"], attended, train=train, key=task_key)
      return out, {"head": head_state}

    return components.per_task(names, one, params, state, key)

  return base.MultiTaskModel(init, encode, decode, names)
