"""Multi-layer perceptron (the sinusoid regressor of Finn et al. 2017, arXiv:1703.03400)."""

from typing import Sequence

import flax.linen as nn


class MLP(nn.Module):
  """Dense layers with ReLU between them.

  Attributes:
    hidden: widths of the hidden layers, e.g. ``(40, 40)``.
    num_outputs: width of the output layer.
  """

  hidden: Sequence[int]
  num_outputs: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No BatchNorm or dropout.
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_outputs, name="head")(x)
