"""Customized Gate Control (CGC) and Progressive Layered Extraction (PLE).

CGC: shared experts plus experts of each task; each task's softmax gate mixes the
shared experts and its own, and its tower reads the mixture. PLE stacks CGC levels, with
a shared gate over all experts carrying a shared path from level to level.

The split at the shared representation: ``encode`` runs everything that feeds more than
one task, i.e. the levels below the last (all their experts and gates: the shared gate
mixes every task's experts into the shared path) and the last level's shared experts.
It returns ``rep = {"experts": out_ExB..., "inputs": {name: h}}``: the shared experts'
outputs and each task's input to its last-level experts and gate. For one level (CGC,
MMoE) that input is ``x`` itself, data rather than a learned feature, so balancers that
take gradients at the representation should read ``rep["experts"]``. ``decode`` runs
each task's own experts, gate and tower (its head).

Reference: Tang, Liu, Zhao, Gong, 2020 (RecSys, doi:10.1145/3383313.3412236).
"""

from typing import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from metalm.mtl import base
from metalm.mtl.architectures import components

TASK = base.TASK_KEY


class Gate(nn.Module):
  """Softmax over ``num_experts`` from a linear map of the flattened input: [B, E]."""

  num_experts: int

  @nn.compact
  def __call__(self, x):
    return nn.softmax(nn.Dense(self.num_experts)(x.reshape(x.shape[0], -1)), axis=-1)


def mix(weights_BxE: jax.Array, experts_E: jax.Array) -> jax.Array:
  """``sum_e weights[b, e] * experts[e, b, ...]``."""
  return jnp.einsum("be,eb...->b...", weights_BxE.astype(experts_E.dtype), experts_E)


def _experts_of(part, num):
  return None if num == 0 else components.replicate(part, num)


def _init_experts(experts, key, x):
  return ({}, {}, None) if experts is None else experts.init(key, x)


def _levels(level_parts, heads, example_shape, tasks, num_shared, num_task_experts):
  """PLE over ``level_parts`` (one expert Component per level); CGC is one level."""
  if num_shared < 0 or num_task_experts < 0 or num_shared + num_task_experts == 0:
    raise ValueError(f"Need experts: num_shared={num_shared}, "
                     f"num_task_experts={num_task_experts}.")
  head_fns = components.task_heads(heads, tasks)
  names = tuple(head_fns)
  num_levels = len(level_parts)
  level_names = [f"level_{j}" for j in range(num_levels - 1)]
  shared = [_experts_of(p, num_shared) for p in level_parts]
  own = [_experts_of(p, num_task_experts) for p in level_parts]
  task_gate = components.from_module(Gate(num_shared + num_task_experts))
  shared_gate = components.from_module(Gate(num_shared + len(names) * num_task_experts))

  def run_experts(experts, params, state, x, train, key):
    if experts is None:
      return None, {}
    return experts.apply(params, state, x, train=train, key=key)

  def gather(*outs):
    return jnp.concatenate([o for o in outs if o is not None], axis=0)

  def init(key):
    x = components.example(example_shape)
    h_shared, h = x, {name: x for name in names}
    params, state = {TASK: {}}, {TASK: {}}
    level_keys = components.split(key, num_levels)
    for j, level in enumerate(level_names):
      keys = iter(components.split(level_keys[j], 2 + 2 * len(names)))
      p, s = {"task_experts": {}, "task_gates": {}}, {"task_experts": {}}
      p["experts"], s["experts"], out_s = _init_experts(shared[j], next(keys), h_shared)
      outs = {}
      for name in names:
        p["task_experts"][name], s["task_experts"][name], outs[name] = _init_experts(
            own[j], next(keys), h[name])
        p["task_gates"][name], _, weights = task_gate.init(next(keys), h[name])
        h[name] = mix(weights, gather(out_s, outs[name]))
      p["gate"], _, weights = shared_gate.init(next(keys), h_shared)
      h_shared = mix(weights, gather(out_s, *outs.values()))
      params[level], state[level] = p, s
    keys = iter(components.split(level_keys[-1], 1 + 3 * len(names)))
    params["experts"], state["experts"], out_s = _init_experts(
        shared[-1], next(keys), h_shared)
    for name in names:
      p, s = {}, {}
      p["experts"], s["experts"], out_t = _init_experts(own[-1], next(keys), h[name])
      p["gate"], _, weights = task_gate.init(next(keys), h[name])
      p["head"], s["head"], _ = head_fns[name].init(next(keys), mix(weights, gather(out_s, out_t)))
      params[TASK][name], state[TASK][name] = p, s
    return params, state

  def encode(params, state, x, *, train: bool, key=None):
    h_shared, h = x, {name: x for name in names}
    new_state = dict(state)
    level_keys = components.split(key, num_levels)
    for j, level in enumerate(level_names):
      p, s = params[level], state[level]
      keys = iter(components.split(level_keys[j], 1 + len(names)))
      out_s, s_shared = run_experts(shared[j], p["experts"], s["experts"], h_shared, train,
                                    next(keys))
      outs, s_own = {}, {}
      for name in names:
        outs[name], s_own[name] = run_experts(
            own[j], p["task_experts"][name], s["task_experts"][name], h[name], train,
            next(keys))
      for name in names:
        weights, _ = task_gate.apply(p["task_gates"][name], {}, h[name], train=train)
        h[name] = mix(weights, gather(out_s, outs[name]))
      weights, _ = shared_gate.apply(p["gate"], {}, h_shared, train=train)
      h_shared = mix(weights, gather(out_s, *outs.values()))
      new_state[level] = {"experts": s_shared, "task_experts": s_own}
    experts_E, new_state["experts"] = run_experts(
        shared[-1], params["experts"], state["experts"], h_shared, train, level_keys[-1])
    return {"experts": experts_E, "inputs": h}, new_state

  def decode(params, state, rep, *, train: bool, key=None):
    def one(name, task_params, task_state, task_key):
      x = rep["inputs"][name]
      expert_key, head_key = components.split(task_key, 2)
      out_t, experts_state = run_experts(
          own[-1], task_params["experts"], task_state["experts"], x, train, expert_key)
      weights, _ = task_gate.apply(task_params["gate"], {}, x, train=train)
      out, head_state = head_fns[name].apply(
          task_params["head"], task_state["head"], mix(weights, gather(rep["experts"], out_t)),
          train=train, key=head_key)
      return out, {"experts": experts_state, "head": head_state}

    return components.per_task(names, one, params, state, key)

  return base.MultiTaskModel(init, encode, decode, names)


def cgc(
    trunk: nn.Module | Sequence[nn.Module],
    heads: nn.Module | Mapping[str, nn.Module],
    example_shape: Sequence[int],
    *,
    tasks: Sequence[str] | None = None,
    num_shared: int = 2,
    num_task_experts: int = 1,
) -> base.MultiTaskModel:
  """CGC: ``num_shared`` shared experts, ``num_task_experts`` per task; per-task gates.

  Params: ``{"experts": stacked E, "task": {name: {"experts": stacked E, "gate": ...,
  "head": ...}}}``; expert params carry a leading expert axis (the experts run under
  ``vmap``). ``rep`` and the encode/decode split: see the module docstring.

  Args:
    trunk: the expert network, a module or stages applied in turn; every expert is an
      independent copy.
    heads: the towers, keyed by task name, or one module copied for each of ``tasks``.
    example_shape: shape of one input batch, used to create the parameters.
    tasks: task names (needed only when ``heads`` is one module).
    num_shared: shared experts.
    num_task_experts: experts of each task.
  """
  return _levels([components.chain(trunk)], heads, example_shape, tasks, num_shared,
                 num_task_experts)


def ple(
    trunk: nn.Module | Sequence[nn.Module],
    heads: nn.Module | Mapping[str, nn.Module],
    example_shape: Sequence[int],
    *,
    tasks: Sequence[str] | None = None,
    num_shared: int = 2,
    num_task_experts: int = 1,
) -> base.MultiTaskModel:
  """PLE: one CGC level per stage of ``trunk``, the experts of level j copies of stage j.

  Levels below the last are shared parameters ``params["level_j"] = {"experts",
  "task_experts": {name: ...}, "task_gates": {name: ...}, "gate"}`` (they feed every task
  through the shared gate); the last level is laid out as in ``cgc``. One stage is CGC.

  Args:
    trunk: the stage modules, one per level (stage j's input is level j-1's output).
    heads: the towers, keyed by task name, or one module copied for each of ``tasks``.
    example_shape: shape of one input batch, used to create the parameters.
    tasks: task names (needed only when ``heads`` is one module).
    num_shared: shared experts per level.
    num_task_experts: experts of each task per level.
  """
  stages = [trunk] if isinstance(trunk, nn.Module) else list(trunk)
  return _levels([components.from_module(m) for m in stages], heads, example_shape, tasks,
                 num_shared, num_task_experts)
