"""Flax models behind one functional boundary (``ModelFns``)."""

import dataclasses
import typing
from typing import Sequence

import ml_collections

from metalm import registry, validate
from metalm.models import context, conv4, functional, mlp, precision, resnet12, text_encoder

# name -> (module class, whether it has BatchNorm)
MODELS = {
    "mlp": (mlp.MLP, False),
    "conv4": (conv4.Conv4, True),
    "resnet12": (resnet12.ResNet12, True),
    "context_mlp": (context.ContextMLP, False),
    "context_conv4": (context.ContextConv4, True),
    "transformer_encoder": (text_encoder.TextEncoder, False),
}

# Image models that pool four times by 2x2: smaller inputs would vanish.
MIN_IMAGE_SIZE = {"conv4": 16, "context_conv4": 16, "resnet12": 16}


def build(config: ml_collections.ConfigDict, example_shape: Sequence[int]):
  """Builds ``ModelFns`` from ``config.name``, ``config.norm`` and the module fields.

  Args:
    config: ``name`` (a key of ``MODELS``), ``norm`` (a BatchNorm mode of
      ``functional.NORM_MODES``), optionally ``compute_dtype`` (``"bfloat16"`` computes
      in bfloat16 over float32 parameters; see ``precision``) and the module's fields.
    example_shape: shape of one input batch, e.g. ``(1, 28, 28, 1)``.
  """
  module_cls, has_batch_norm = registry.lookup("model", config.name, MODELS)
  fields = {k: v for k, v in config.items() if k not in ("name", "norm", "compute_dtype")}
  registry.check_keywords(module_cls, fields, where="config.model",
                          what=f"model {config.name!r}", ignore=("parent", "name"))
  check_module_fields(module_cls, fields)
  smallest = MIN_IMAGE_SIZE.get(config.name)
  if smallest and (len(example_shape) != 4 or min(example_shape[1:3]) < smallest):
    raise ValueError(
        f"Model {config.name!r} takes [batch, height, width, channels] images of at least "
        f"{smallest}x{smallest} (it halves them four times); got example shape "
        f"{tuple(example_shape)}. Resize the images or choose another model.")
  norm = config.get("norm", "none")
  if has_batch_norm == (norm == "none"):
    raise ValueError(
        f"config.model.norm={norm!r} does not fit model {config.name!r}: use "
        + ("'transductive' or 'support'." if has_batch_norm else "'none'.")
    )
  model = functional.from_linen(module_cls(**fields), example_shape, norm=norm)
  return precision.with_compute_dtype(model, config.get("compute_dtype", "float32"))


# Integer fields that are sizes: at least 1. Other integer fields (num_classes: 0 means
# no head; pad_id; block indices) are at least 0.
_SIZES = ("hidden", "filters", "channels", "dim", "depth", "num_heads", "vocab_size",
          "mlp_dim", "num_outputs", "block_size", "drop_block_size", "num_context")


def check_module_fields(module_cls, fields: dict) -> None:
  """Raises a ValueError naming a model field whose value does not fit its annotation."""
  hints = typing.get_type_hints(module_cls)
  declared = {f.name for f in dataclasses.fields(module_cls)}
  for name, value in fields.items():
    if name not in declared:
      continue
    where, hint = f"config.model.{name}", hints.get(name)
    optional = type(None) in typing.get_args(hint)
    if optional and value is None:
      continue
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) \
        if optional else hint
    minimum = 1 if name in _SIZES else 0
    if base is int:
      validate.integer(value, where, minimum=minimum)
    elif base is float:
      validate.real(value, where, minimum=0.0,
                    below=1.0 if "rate" in name or "dropout" in name else None)
    elif base is str and not isinstance(value, str):
      raise ValueError(f"{where} must be a string; got {value!r}.")
    elif typing.get_origin(base) in (Sequence, typing.get_origin(Sequence[int])) or \
        str(base).startswith("typing.Sequence"):
      if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{where} must be a sequence of integers; got {value!r}.")
      for i, item in enumerate(value):
        validate.integer(item, f"{where}[{i}]", minimum=minimum)
