"""Linen modules as pure ``(init, apply)`` pairs, the pieces multitask architectures chain.

This is ``metalm.models.functional.from_linen`` for one part of a network: ``init`` also
returns the part's output on the example input, so the next part can be created on it.
Collections other than ``params`` (e.g. ``batch_stats``) are state. A Linen module is a
definition, not a set of weights: every ``init`` with its own key makes an independent copy.
"""

import inspect
from typing import Callable, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from metalm.mtl import base


class Component(NamedTuple):
  """One part of a network as pure functions.

  Attributes:
    init: ``init(key, x) -> (params, state, out)``.
    apply: ``apply(params, state, x, *, train, key=None) -> (out, state)``; with
      ``train=True`` BatchNorm uses the statistics of ``x`` and returns them in ``state``.
  """

  init: Callable
  apply: Callable


def _train_kwargs(module: nn.Module) -> Callable[[bool], dict]:
  # Heads such as nn.Dense take no ``train`` argument; trunks with BatchNorm or dropout do.
  takes_train = "train" in inspect.signature(type(module).__call__).parameters
  return (lambda train: {"train": train}) if takes_train else (lambda train: {})


def from_module(module: nn.Module) -> Component:
  """Wraps a Linen module called as ``module(x, train=...)`` (or ``module(x)``)."""
  kwargs = _train_kwargs(module)

  def init(key, x):
    params_key, dropout_key = jax.random.split(key)
    out, variables = module.init_with_output(
        {"params": params_key, "dropout": dropout_key}, x, **kwargs(False))
    variables = dict(variables)
    params = variables.pop("params", {})
    return params, variables, out

  def apply(params, state, x, *, train: bool, key=None):
    rngs = {} if key is None else {"dropout": key}
    variables = {"params": params, **state}
    if train and state:
      out, new_state = module.apply(
          variables, x, rngs=rngs, mutable=list(state), **kwargs(True))
      return out, dict(new_state)
    return module.apply(variables, x, rngs=rngs, **kwargs(train)), state

  return Component(init, apply)


def split(key, num: int) -> list:
  """``num`` keys from ``key``, or ``num`` Nones when ``key`` is None (no dropout)."""
  return [None] * num if key is None else list(jax.random.split(key, num))


def stage_names(num: int) -> list[str]:
  return [f"stage_{j}" for j in range(num)]


def chain(modules: nn.Module | Sequence[nn.Module]) -> Component:
  """One module, or stages applied in turn (params keyed ``stage_0``, ``stage_1``, ...)."""
  if isinstance(modules, nn.Module):
    return from_module(modules)
  parts = [from_module(m) for m in modules]
  names = stage_names(len(parts))

  def init(key, x):
    params, state = {}, {}
    for name, part, part_key in zip(names, parts, split(key, len(parts)), strict=True):
      params[name], state[name], x = part.init(part_key, x)
    return params, state, x

  def apply(params, state, x, *, train: bool, key=None):
    new_state = {}
    for name, part, part_key in zip(names, parts, split(key, len(parts)), strict=True):
      x, new_state[name] = part.apply(params[name], state[name], x, train=train, key=part_key)
    return x, new_state

  return Component(init, apply)


def replicate(part: Component, num: int) -> Component:
  """``num`` independent copies of ``part`` on one input: params and outputs stacked on E.

  The copies run under ``vmap`` (one batched computation, no Python loop).
  """

  def init(key, x):
    return jax.vmap(part.init, in_axes=(0, None))(jax.random.split(key, num), x)

  def apply(params, state, x, *, train: bool, key=None):
    keys = None if key is None else jax.random.split(key, num)
    return jax.vmap(lambda p, s, k: part.apply(p, s, x, train=train, key=k))(
        params, state, keys)

  return Component(init, apply)


def task_heads(heads: nn.Module | Mapping[str, nn.Module],
               tasks: Sequence[str] | None) -> dict[str, Component]:
  """Heads keyed by task name: a mapping, or one module copied for every name in ``tasks``."""
  if isinstance(heads, nn.Module):
    if not tasks:
      raise ValueError("One head module for all tasks needs the task names: pass tasks=.")
    heads = {task: heads for task in tasks}
  elif tasks is not None and tuple(tasks) != tuple(heads):
    raise ValueError(f"tasks={tuple(tasks)} differ from the head names {tuple(heads)}.")
  if not heads:
    raise ValueError("A multitask model needs at least one task head.")
  return {task: from_module(head) for task, head in heads.items()}


def example(shape: Sequence[int]) -> jax.Array:
  return jnp.zeros(tuple(shape), jnp.float32)


def per_task(names: Sequence[str], fn: Callable, params, state, key):
  """Runs ``fn(name, params[TASK][name], state[TASK][name], key) -> (out, task_state)``.

  The loop over tasks is unrolled under ``jit``: task parts may differ in shape.

  Returns:
    ``(outputs, state)``: outputs keyed by task name, and ``state`` with only its
    task-specific part replaced.
  """
  outputs, task_state = {}, {}
  for name, task_key in zip(names, split(key, len(names)), strict=True):
    outputs[name], task_state[name] = fn(
        name, params[base.TASK_KEY][name], state[base.TASK_KEY][name], task_key)
  return outputs, {**state, base.TASK_KEY: task_state}
