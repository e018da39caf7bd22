"""MTAN's augmentation for dense tasks: a random scale crop and a horizontal flip.

A crop of ``1/s`` the height and width (``s`` drawn from 1.0, 1.2, 1.5) is resized back
to full size, bilinearly (``align_corners=True``) for images and normals and by nearest
neighbour (as torch computes it, in float32) for labels and depth; depth is divided by
``s``, as the scene comes ``s`` times closer. Then, with probability 1/2, every field is
flipped left-right and the normals' x component negated. Liu et al.'s MTAN repository
(credited to Jialong Wu, lorenmt/mtan#34), then CAGrad, Nash-MTL and FAMO train NYUv2
and Cityscapes with it; the MTAN paper's own results used none.
Reference: Liu, Johns & Davison 2019, "End-to-End Multi-Task Learning with Attention",
arXiv:1803.10704.
"""

from typing import Mapping, Sequence

import numpy as np

SCALES = (1.0, 1.2, 1.5)


def random_scale_crop(example: Mapping[str, np.ndarray], kinds: Mapping[str, str],
                      rng: np.random.Generator,
                      scales: Sequence[float] = SCALES) -> dict[str, np.ndarray]:
  """Crops a random ``1/s`` window of every field and resizes it to the full size.

  Args:
    example: ``{key: [H, W, ...]}``, every field of the same ``H, W``.
    kinds: ``{key: "image" | "label" | "depth" | "normal"}``.
    rng: draws ``s``, then the window's top and left offsets.
    scales: the choices of ``s``.

  Returns:
    The augmented example, each field of its input shape and dtype.
  """
  height, width = next(iter(example.values())).shape[:2]
  scale = float(scales[rng.integers(len(scales))])
  h, w = int(height / scale), int(width / scale)
  top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
  out = {}
  for key, x in example.items():
    crop = x[top:top + h, left:left + w]
    if kinds[key] in ("image", "normal"):
      out[key] = _bilinear(crop, height, width).astype(x.dtype)
    else:
      resized = crop[_nearest(h, height)][:, _nearest(w, width)]
      out[key] = (resized / scale).astype(x.dtype) if kinds[key] == "depth" else resized
  return out


def horizontal_flip(example: Mapping[str, np.ndarray],
                    kinds: Mapping[str, str]) -> dict[str, np.ndarray]:
  """Mirrors every field left-right; normals' x component changes sign."""
  out = {}
  for key, x in example.items():
    x = x[:, ::-1].copy()
    if kinds[key] == "normal":
      x[..., 0] = -x[..., 0]
    out[key] = x
  return out


def mtan_augment(example: Mapping[str, np.ndarray], kinds: Mapping[str, str],
                 rng: np.random.Generator,
                 scales: Sequence[float] = SCALES) -> dict[str, np.ndarray]:
  """``random_scale_crop``, then ``horizontal_flip`` with probability 1/2."""
  example = random_scale_crop(example, kinds, rng, scales)
  return horizontal_flip(example, kinds) if rng.random() < 0.5 else example


def _nearest(size_in: int, size_out: int) -> np.ndarray:
  """torch's ``mode="nearest"`` source indices: ``floor(dst * (in / out))`` in float32."""
  if size_in == size_out:
    return np.arange(size_out)
  scale = np.float32(size_in) / np.float32(size_out)
  src = np.floor(np.arange(size_out, dtype=np.float32) * scale).astype(np.int64)
  return np.minimum(src, size_in - 1)


def _bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
  """``x [h, w, C]`` resized to ``[height, width, C]``, corners aligned."""
  y0, y1, fy = _linear(x.shape[0], height)
  x0, x1, fx = _linear(x.shape[1], width)
  x = x.astype(np.float64)
  rows = x[y0] * (1 - fy)[:, None, None] + x[y1] * fy[:, None, None]
  return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def _linear(size_in: int, size_out: int):
  src = np.arange(size_out) * ((size_in - 1) / max(size_out - 1, 1))
  lo = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
  return lo, np.minimum(lo + 1, size_in - 1), src - lo
