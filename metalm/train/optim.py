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


def build(config: ml_collections.ConfigDict, where: str) -> optax.GradientTransformation:
  """Builds ``optax.<config.name>(**other fields)``.

  Args:
    config: ``name`` plus the optimizer's keyword arguments (e.g. ``learning_rate``).
    where: the config path, for error messages (e.g. "config.outer_optimizer").
  """
  factory = registry.lookup(f"optimizer in {where}.name", config.name, OPTIMIZERS)
  kwargs = {k: v for k, v in config.items() if k != "name"}
  accepted = inspect.signature(factory).parameters
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ValueError(
        f"Unknown field(s) {unknown} in {where} for optax.{config.name}; "
        f"it accepts: {sorted(accepted)}."
    )
  return factory(**kwargs)
