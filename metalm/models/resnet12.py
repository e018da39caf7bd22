"""ResNet-12 of MetaOptNet (Lee et al. 2019, arXiv:1904.03758).

Four residual blocks (64, 160, 320, 640 channels), each three [conv 3x3, BatchNorm]
with leaky ReLU (slope 0.1), a 1x1-conv shortcut and a 2x2 max-pool; dropout after the
first two blocks and DropBlock (Ghiasi et al. 2018, arXiv:1810.12890) after the last two.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _batch_norm(train: bool):
  return nn.BatchNorm(use_running_average=not train, momentum=0.0, epsilon=1e-5)


class DropBlock(nn.Module):
  """Zeroes contiguous ``block_size`` squares of a NHWC feature map while training."""

  rate: float
  block_size: int

  @nn.compact
  def __call__(self, x, train: bool):
    if not train or self.rate == 0.0:
      return x
    height, width = x.shape[-3], x.shape[-2]
    size = min(self.block_size, height, width)
    valid = (height - size + 1) * (width - size + 1)
    gamma = self.rate / size**2 * (height * width) / valid
    seeds = jax.random.bernoulli(self.make_rng("dropout"), gamma, x.shape)
    # Seeds may only start where a whole block fits inside the map.
    row = jnp.arange(height)[:, None] <= height - size
    col = jnp.arange(width)[None, :] <= width - size
    fits = (row & col).reshape((1,) * (x.ndim - 3) + (height, width, 1))
    seeds = seeds & fits
    pad = ((0, 0),) * (x.ndim - 3) + ((size - 1, 0), (size - 1, 0), (0, 0))
    dropped = nn.max_pool(
        jnp.pad(seeds.astype(x.dtype), pad), (size, size), strides=(1, 1)
    )
    keep = 1.0 - dropped
    return x * keep * (keep.size / jnp.maximum(keep.sum(), 1.0))


class ResidualBlock(nn.Module):
  """Three conv-BN layers with a 1x1 shortcut, leaky ReLU, max-pool, regularizer."""

  channels: int
  drop_rate: float
  drop_block_size: int  # 0 means plain dropout.

  @nn.compact
  def __call__(self, x, train: bool):
    shortcut = _batch_norm(train)(nn.Conv(self.channels, (1, 1), use_bias=False)(x))
    for i in range(3):
      x = nn.Conv(self.channels, (3, 3), padding="SAME", use_bias=False)(x)
      x = _batch_norm(train)(x)
      if i < 2:
        x = nn.leaky_relu(x, 0.1)
    x = nn.leaky_relu(x + shortcut, 0.1)
    x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
    if self.drop_block_size:
      return DropBlock(self.drop_rate, self.drop_block_size)(x, train)
    return nn.Dropout(self.drop_rate, deterministic=not train or not self.drop_rate)(x)


class ResNet12(nn.Module):
  """ResNet-12 on NHWC images.

  Attributes:
    num_classes: output width; 0 returns the features (for metric / closed-form heads).
    channels: widths of the four blocks.
    drop_rate: dropout / DropBlock rate (0.1 in the paper).
    drop_block_size: DropBlock square size for the last two blocks (5 in the paper).
    pool: "flatten" (as MetaOptNet) or "avg" (global average pooling).
  """

  num_classes: int
  channels: Sequence[int] = (64, 160, 320, 640)
  drop_rate: float = 0.1
  drop_block_size: int = 5
  pool: str = "flatten"

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, channels in enumerate(self.channels):
      block_size = self.drop_block_size if i >= 2 else 0
      x = ResidualBlock(channels, self.drop_rate, block_size)(x, train)
    if self.pool == "avg":
      x = x.mean(axis=(-3, -2))
    elif self.pool == "flatten":
      x = x.reshape(x.shape[:-3] + (-1,))
    else:
      raise ValueError(f"ResNet12.pool must be 'flatten' or 'avg', got {self.pool!r}.")
    if self.num_classes:
      x = nn.Dense(self.num_classes, name="head")(x)
    return x
