"""A small convolutional encoder-decoder trunk and per-pixel heads for dense tasks.

A CPU-sized stand-in for the SegNet of MTAN (Liu, Johns & Davison 2019,
arXiv:1803.10704): conv blocks with max-pooling down, nearest upsampling and conv
blocks back up, skip connections added; heads are 3x3 convolutions. Inputs ``[B, H, W,
3]`` with H and W divisible by ``2 ** len(features) - 1``.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class EncoderDecoder(nn.Module):
  """Features ``[B, H, W, features[0]]`` at the input resolution.

  Attributes:
    features: widths from the finest to the coarsest level.
  """

  features: Sequence[int] = (16, 32, 64)

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    skips = []
    for i, width in enumerate(self.features):
      if i:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      skips.append(x)
    for width, skip in zip(self.features[-2::-1], skips[-2::-1], strict=True):
      b, h, w, c = x.shape
      x = jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")
      x = nn.relu(nn.Conv(width, (3, 3))(x) + skip)
    return x


class PixelHead(nn.Module):
  """A 3x3 convolution to ``channels`` per pixel; ``unit`` scales outputs to unit length
  (surface normals, as MTAN's normal head)."""

  channels: int
  unit: bool = False

  @nn.compact
  def __call__(self, rep):
    out = nn.Conv(self.channels, (3, 3))(rep)
    if self.unit:
      out = out / jnp.maximum(jnp.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
    return out
