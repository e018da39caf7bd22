"""Optax optimizers chosen by name from a config."""

import inspect

import ml_collections
import optax

from metalm import registry

OPTIMIZERS = {
    "sgd": optax.sgd,
    "adam": optax.adam,
    "adamw": optax.adamw,
    "rmsprop": optax.rmsprop,
    "lamb": optax.lamb,
}


SCHEDULES = {
    "exponential_decay": optax.exponential_decay,
    "cosine_decay": optax.cosine_decay_schedule,
    "warmup_cosine_decay": optax.warmup_cosine_decay_schedule,
}


def build(config: ml_collections.ConfigDict, where: str) -> optax.GradientTransformation:
  """Builds ``optax.<config.name>(**other fields)``.

  Args:
    config: ``name`` plus the optimizer's keyword arguments. ``learning_rate`` is a
      number or a schedule group: ``name`` (a key of ``SCHEDULES``) and its arguments.
    where: the config path, for error messages (e.g. "config.outer_optimizer").
  """
  factory = registry.lookup(f"optimizer in {where}.name", config.name, OPTIMIZERS)
  kwargs = {k: v for k, v in config.items() if k != "name"}
  if isinstance(kwargs.get("learning_rate"), ml_collections.ConfigDict):
    kwargs["learning_rate"] = _schedule(kwargs["learning_rate"], f"{where}.learning_rate")
  accepted = inspect.signature(factory).parameters
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ValueError(
        f"Unknown field(s) {unknown} in {where} for optax.{config.name}; "
        f"it accepts: {sorted(accepted)}."
    )
  return factory(**kwargs)


def _schedule(config: ml_collections.ConfigDict, where: str):
  factory = registry.lookup(f"schedule in {where}.name", config.name, SCHEDULES)
  kwargs = {k: v for k, v in config.items() if k != "name"}
  accepted = inspect.signature(factory).parameters
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ValueError(f"Unknown field(s) {unknown} in {where} for optax.{factory.__name__}; "
                     f"it accepts: {sorted(accepted)}.")
  return factory(**kwargs)
