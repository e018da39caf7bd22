"""Small trunks for tests and experiments: an MLP and the Multi-MNIST LeNet.

Trunks are Linen modules called as ``module(x, train)``; ``*_stages`` give the same
networks as tuples of stage modules for the staged architectures (cross-stitch, MTAN,
PLE), which chain them.

Reference (LeNet): Sener & Koltun, 2018, arXiv:1810.04650 (MultiLeNetR / MultiLeNetO).
"""

from typing import Sequence

import flax.linen as nn


class MLP(nn.Module):
  """Dense layers with ReLU between them; inputs are flattened to [B, D].

  Attributes:
    features: layer widths.
    activate_final: ReLU after the last layer too (a trunk) or not (a head).
  """

  features: Sequence[int]
  activate_final: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No BatchNorm or dropout.
    x = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.features):
      x = nn.Dense(width)(x)
      if self.activate_final or i + 1 < len(self.features):
        x = nn.relu(x)
    return x


class ConvPool(nn.Module):
  """LeNet stage: conv ``kernel`` x ``kernel`` (VALID) -> max-pool 2 -> ReLU; NHWC."""

  filters: int
  kernel: int = 5

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    x = nn.Conv(self.filters, (self.kernel, self.kernel), padding="VALID")(x)
    return nn.relu(nn.max_pool(x, (2, 2), strides=(2, 2)))


def mlp_stages(features: Sequence[int]) -> tuple[nn.Module, ...]:
  """One ``MLP`` stage (Dense + ReLU) per width."""
  return tuple(MLP((width,)) for width in features)


def lenet_stages(kernels: Sequence[int] = (5, 5)) -> tuple[nn.Module, ...]:
  """Sener & Koltun's shared LeNet: conv 10 5x5, pool, ReLU; conv 20 5x5, pool, ReLU;
  dense 50 + ReLU. 28x28x1 inputs give 50 features (through 12x12x10 and 4x4x20).
  ``kernels=(9, 5)`` is Lin et al. 2019's for 36x36 inputs (through 14x14x10 and
  5x5x20; ParetoMTL's ``multiMNIST/model_lenet.py``, arXiv:1912.12854)."""
  first, second = kernels
  return (ConvPool(10, first), ConvPool(20, second), MLP((50,)))


class LeNet(nn.Module):
  """``lenet_stages`` as one module (for hard sharing, MMoE, CGC)."""

  kernels: Sequence[int] = (5, 5)

  @nn.compact
  def __call__(self, x, train: bool = False):
    for stage in lenet_stages(self.kernels):
      x = stage(x, train)
    return x


def lenet_head(num_classes: int = 10) -> nn.Module:
  """Sener & Koltun's task head: dense 50 + ReLU, dense ``num_classes`` (logits)."""
  return MLP((50, num_classes), activate_final=False)
