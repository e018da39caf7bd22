"""Optax optimizers chosen by name from a config."""

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
  kwargs = {k: v for k, v in config.items() if k != "name"}
  if isinstance(kwargs.get("learning_rate"), ml_collections.ConfigDict):
    kwargs["learning_rate"] = _from_config(
        "schedule", SCHEDULES, kwargs["learning_rate"], f"{where}.learning_rate")
  return _from_config("optimizer", OPTIMIZERS, {**config, **kwargs}, where)


def _from_config(kind, table, config, where):
  """``table[config["name"]](**other fields)``, with errors naming the bad field."""
  factory = registry.lookup(f"{kind} in {where}.name", config["name"], table)
  kwargs = {k: v for k, v in config.items() if k != "name"}
  registry.check_keywords(factory, kwargs, where=where, what=f"optax.{factory.__name__}")
  return factory(**kwargs)
