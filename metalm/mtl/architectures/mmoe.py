"""Multi-gate Mixture-of-Experts: shared experts, a softmax gate and a tower per task.

MMoE is CGC without task-specific experts, so it is built by ``cgc.cgc``. ``encode``
returns ``rep = {"experts": out_ExB..., "inputs": {name: x}}``: the expert outputs, and the
input each task's gate reads (the data ``x``; balancers that take gradients at the
representation should read ``rep["experts"]``). ``decode`` runs each task's gate and tower.

Reference: Ma, Zhao, Yi, Chen, Hong, Chi, 2018 (KDD, doi:10.1145/3219819.3220007).
"""

from typing import Mapping, Sequence

import flax.linen as nn

from metalm.mtl import base
from metalm.mtl.architectures import cgc


def mmoe(
    trunk: nn.Module | Sequence[nn.Module],
    heads: nn.Module | Mapping[str, nn.Module],
    example_shape: Sequence[int],
    *,
    tasks: Sequence[str] | None = None,
    num_experts: int = 4,
) -> base.MultiTaskModel:
  """``num_experts`` copies of ``trunk``, mixed per task by a softmax gate on the input.

  Params: ``{"experts": stacked E, "task": {name: {"experts": {}, "gate": ...,
  "head": ...}}}``; expert params carry a leading expert axis.

  Args:
    trunk: the expert network, a module or stages applied in turn.
    heads: the towers, keyed by task name, or one module copied for each of ``tasks``.
    example_shape: shape of one input batch, used to create the parameters.
    tasks: task names (needed only when ``heads`` is one module).
    num_experts: number of shared experts.
  """
  return cgc.cgc(trunk, heads, example_shape, tasks=tasks, num_shared=num_experts,
                 num_task_experts=0)
