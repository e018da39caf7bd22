"""Flax models behind one functional boundary (``ModelFns``)."""

from typing import Sequence

import ml_collections

from metalm import registry
from metalm.models import context, conv4, functional, mlp, precision, resnet12

# name -> (module class, whether it has BatchNorm)
MODELS = {
    "mlp": (mlp.MLP, False),
    "conv4": (conv4.Conv4, True),
    "resnet12": (resnet12.ResNet12, True),
    "context_mlp": (context.ContextMLP, False),
    "context_conv4": (context.ContextConv4, True),
}


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
  norm = config.get("norm", "none")
  if has_batch_norm == (norm == "none"):
    raise ValueError(
        f"config.model.norm={norm!r} does not fit model {config.name!r}: use "
        + ("'transductive' or 'support'." if has_batch_norm else "'none'.")
    )
  model = functional.from_linen(module_cls(**fields), example_shape, norm=norm)
  return precision.with_compute_dtype(model, config.get("compute_dtype", "float32"))
