"""Conv-4 backbone of Vinyals et al. 2016 (arXiv:1606.04080) and Finn et al. 2017.

Four blocks of [conv 3x3, BatchNorm, ReLU, max-pool 2]; 64 filters for 28x28 inputs
(Omniglot), 32 filters for 84x84 inputs (miniImageNet), then a linear classifier.
"""

import flax.linen as nn

from metalm.models import layers


class ConvBlock(nn.Module):
  """conv 3x3 -> BatchNorm -> ReLU -> max-pool 2."""

  filters: int
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool):
    x = layers.Conv(self.filters, (3, 3), impl=self.conv_impl)(x)
    # momentum=0: the stored statistics are exactly those of the last batch, which is
    # what the per-task modes in metalm.models.functional need.
    x = nn.BatchNorm(use_running_average=not train, momentum=0.0, epsilon=1e-5)(x)
    x = nn.relu(x)
    return layers.max_pool_2x2(x)


class Conv4(nn.Module):
  """Conv-4 with a linear head; inputs are NHWC images.

  Attributes:
    num_classes: output width (the N of N-way); 0 returns the flattened features.
    filters: 64 for 28x28 inputs, 32 for 84x84 inputs.
    conv_impl: how convolutions are computed (``layers.CONV_IMPLS``); ``"auto"`` picks
      batched matrix products on CPU and XLA's convolution on accelerators.
  """

  num_classes: int
  filters: int = 64
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool = False):
    for _ in range(4):
      x = ConvBlock(self.filters, self.conv_impl)(x, train)
    x = x.reshape(x.shape[:-3] + (-1,))
    if self.num_classes:
      x = nn.Dense(self.num_classes, name="head")(x)
    return x
