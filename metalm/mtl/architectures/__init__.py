"""Multitask architectures: any Flax trunk, per-task heads, one ``MultiTaskModel``.

Every architecture is ``factory(trunk, heads, example_shape, *, tasks=None, **options)``:
``trunk`` is a Linen module or a sequence of stage modules, ``heads`` maps task names to
Linen modules (or is one module copied for every name in ``tasks``). The result splits
at the shared representation: ``params["task"][name]`` holds all that only task ``name``
reads and ``decode`` reads nothing else; ``encode`` reads only the other, shared entries.
"""

from typing import Mapping, Sequence

import flax.linen as nn
import ml_collections

from metalm import registry
from metalm.mtl import base
from metalm.mtl.architectures import cgc, cross_stitch, hard_sharing, mmoe, mtan

ARCHITECTURES = {
    "hard_sharing": hard_sharing.hard_sharing,
    "cross_stitch": cross_stitch.cross_stitch,
    "mtan": mtan.mtan,
    "mmoe": mmoe.mmoe,
    "cgc": cgc.cgc,
    "ple": cgc.ple,
}

_ARGUMENTS = ("trunk", "heads", "example_shape", "tasks")


def build(
    config_or_name: str | ml_collections.ConfigDict,
    trunk: nn.Module | Sequence[nn.Module],
    heads: nn.Module | Mapping[str, nn.Module],
    example_shape: Sequence[int],
    *,
    tasks: Sequence[str] | None = None,
    **options,
) -> base.MultiTaskModel:
  """Builds a registered architecture around ``trunk`` and ``heads``.

  Args:
    config_or_name: a key of ``ARCHITECTURES``, or a config with ``name`` and the
      architecture's options (e.g. ``num_experts``).
    trunk: a Linen module or a sequence of stage modules.
    heads: head modules keyed by task name, or one module copied for each of ``tasks``.
    example_shape: shape of one input batch, used to create the parameters.
    tasks: task names (needed only when ``heads`` is one module).
    **options: further options; they override the config's.
  """
  if isinstance(config_or_name, str):
    name, fields = config_or_name, {}
  else:
    name = config_or_name.name
    fields = {k: v for k, v in config_or_name.items() if k != "name"}
  factory = registry.lookup("architecture", name, ARCHITECTURES)
  fields.update(options)
  registry.check_keywords(factory, fields, where="config.architecture",
                          what=f"architecture {name!r}", ignore=_ARGUMENTS)
  return factory(trunk, heads, example_shape, tasks=tasks, **fields)
