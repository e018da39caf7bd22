"""Optax optimizers chosen by name from a config."""

import inspect

import ml_collections
import optax

from metalm import registry, validate

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
  if not isinstance(config, (ml_collections.ConfigDict, dict)) or "name" not in config:
    raise ValueError(f"{where} must be a group with a 'name' (one of "
                     f"{', '.join(sorted(OPTIMIZERS))}) and the optimizer's arguments; "
                     f"got {config!r}.")
  kwargs = {k: v for k, v in config.items() if k != "name"}
  if isinstance(kwargs.get("learning_rate"), (ml_collections.ConfigDict, dict)):
    kwargs["learning_rate"] = _from_config(
        "schedule", SCHEDULES, kwargs["learning_rate"], f"{where}.learning_rate")
  elif "learning_rate" in kwargs:
    validate.real(kwargs["learning_rate"], f"{where}.learning_rate", positive=True,
                  below=_FLOAT32_MAX)
  return _from_config("optimizer", OPTIMIZERS, {**config, **kwargs}, where)


def _from_config(kind, table, config, where):
  """``table[config["name"]](**other fields)``, with errors naming the bad field."""
  factory = registry.lookup(f"{kind} in {where}.name", config["name"], table)
  kwargs = {k: v for k, v in config.items() if k != "name"}
  registry.check_keywords(factory, kwargs, where=where, what=f"optax.{factory.__name__}")
  _check_arguments(factory, kwargs, where)
  return factory(**kwargs)


_FLOAT32_MAX = 3.4028234663852886e38  # Parameters and updates are float32.
# Decay rates that must lie in [0, 1); at 1, Adam's bias correction divides by zero.
_UNIT_INTERVAL = ("b1", "b2", "decay", "momentum")


def _check_arguments(factory, kwargs, where):
  """Flags must be booleans; every other argument a finite number >= 0."""
  parameters = inspect.signature(factory).parameters
  for name, value in kwargs.items():
    if name in ("learning_rate", "mask") or name.endswith("_dtype"):
      continue
    default = parameters[name].default
    if isinstance(default, bool):
      if not isinstance(value, bool):
        raise ValueError(f"{where}.{name} must be True or False; got {value!r}.")
    elif not (value is None and default is None):
      validate.real(value, f"{where}.{name}", minimum=0.0,
                    below=1.0 if name in _UNIT_INTERVAL else None)
