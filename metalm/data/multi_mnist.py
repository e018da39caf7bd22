"""Multi-MNIST, Multi-Fashion and Multi-(Fashion+MNIST): two items per image, two tasks.

Lin, Zhen, Li, Zhang & Kwong 2019, "Pareto Multi-Task Learning" (NeurIPS,
arXiv:1912.12854), after Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective
Optimization" (NeurIPS, arXiv:1810.04650). Task ``left`` is the class of the item in the
top-left of the canvas, task ``right`` that of the item in the bottom-right.
Multi-(Fashion+MNIST) puts an MNIST digit top-left and a Fashion-MNIST item
bottom-right.

What the references do (read from their code):
  * Sener & Koltun (``multi_task/loaders/multi_mnist_loader.py`` of
    isl-org/MultiObjectiveOptimization): one composite per source image, its partner
    drawn uniformly at random; left item at rows/cols 0:28, right at 6:34 of a 36x36
    canvas, their overlap composed with ``np.maximum``; then resized to 28x28 with
    ``scipy.misc.imresize(..., interp='nearest')``. No random shifts.
  * Lin et al. published their three data sets as pickles, not the code that made
    them; their ``multiMNIST/train.py`` (Xi-L/ParetoMTL) reads 120000 training and
    20000 test images of 36x36 (no resize).

What we do: each source image is used equally often as left and as right item
(independent seeded permutations, repeated up to ``num_examples``). Each item's
top-left corner is shifted by up to ``max_shift`` pixels per axis, independently
(uniform over 0..max_shift): the left item's corner lies in ``[0, max_shift]^2``, the
right item's in ``[right_corner - max_shift, right_corner]^2`` (``right_corner = 8``:
flush with the bottom-right of 36x36). The canvas is the pixelwise max of the two
placed items (as Sener & Koltun; ``combine="sum"`` adds and clips at 255, as the
regeneration of Ma et al. 2020, arXiv:2006.16434). Defaults follow Lin et al.'s array
shapes: 36x36 images, 120000 train / 20000 test. ``image_size=28`` resizes by nearest
neighbour as PIL/scipy do (source pixel ``floor((i + 0.5) * 36 / 28)``);
``max_shift=0, right_corner=6, image_size=28`` is Sener & Koltun's construction.
On a (busy) 2-core CPU, once the IDX files are read, 60000 composites take 0.5-1.5 s
and 120000 take 1-3 s (float32: 622 MB; ``dtype=np.uint8`` is 4x smaller and faster).
"""

from typing import NamedTuple

import numpy as np

from metalm.data import mnist

# Data set name -> (source of the left item, source of the right item).
VARIANTS = {"multi_mnist": ("mnist", "mnist"),
            "multi_fashion": ("fashion_mnist", "fashion_mnist"),
            "multi_fashion_mnist": ("mnist", "fashion_mnist")}
TASKS = ("left", "right")
NUM_EXAMPLES = {"train": 120000, "test": 20000}  # Lin et al. 2019.
CANVAS_SIZE = 36
ITEM_SIZE = mnist.IMAGE_SIZE


class Composites(NamedTuple):
  """Composite images and the class of each item, keyed by task name."""

  x: np.ndarray  # [N, S, S, 1] float32 in [0, 1] (or uint8 0..255).
  y: dict[str, np.ndarray]  # {"left": [N] int32, "right": [N] int32}.
  left_index: np.ndarray  # [N] int32: row of the left item in its source split.
  right_index: np.ndarray  # [N] int32: row of the right item in its source split.
  offsets: np.ndarray  # [N, 4] int32: canvas (row, col) of the left, then the right item.


def load(name: str = "multi_mnist", split: str = "train", *, data_dir=None,
         num_examples: int | None = None, seed: int = 0, image_size: int = CANVAS_SIZE,
         max_shift: int = 4, right_corner: int = CANVAS_SIZE - ITEM_SIZE,
         combine: str = "max", dtype=np.float32, verify: bool = True) -> Composites:
  """Composites of one split, built from that split of the source IDX files.

  Args:
    name: ``"multi_mnist"``, ``"multi_fashion"`` or ``"multi_fashion_mnist"``.
    split: ``"train"`` or ``"test"``; items come from that split of the sources.
    data_dir: the datasets folder holding ``mnist/`` and ``fashion_mnist/``;
      ``$METALM_DATA_DIR`` by default (see ``mnist.load``).
    num_examples: composites to build; 120000 (train) / 20000 (test) by default.
    seed: the same seed, arguments and files give the same composites.
    image_size: side of the output (36: no resize; otherwise nearest neighbour).
    max_shift: largest shift of an item's corner per axis, in canvas pixels.
    right_corner: row and column of the right item's corner before its shift.
    combine: ``"max"`` or ``"sum"`` (clipped at 255) where the items overlap.
    dtype: ``np.float32`` for [0, 1], or ``np.uint8`` for 0..255 (4x smaller).
    verify: check the sha256 of the source files.

  Returns:
    ``Composites``; ``(c.x, c.y)`` is a multitask batch of the whole split.
  """
  if name not in VARIANTS:
    raise ValueError(f"Unknown data set {name!r}; use one of {tuple(VARIANTS)}.")
  left, right = (mnist.load(source, split, data_dir=data_dir, verify=verify)
                 for source in VARIANTS[name])
  rng = np.random.default_rng([seed, mnist.SPLITS.index(split)])
  return make(left, right, rng, num_examples=num_examples or NUM_EXAMPLES[split],
              image_size=image_size, max_shift=max_shift, right_corner=right_corner,
              combine=combine, dtype=dtype)


def make(left: mnist.Arrays, right: mnist.Arrays, rng: np.random.Generator, *,
         num_examples: int, image_size: int = CANVAS_SIZE, max_shift: int = 4,
         right_corner: int = CANVAS_SIZE - ITEM_SIZE, combine: str = "max",
         dtype=np.float32) -> Composites:
  """Composites of ``left`` and ``right`` items (``[n, 28, 28]`` uint8 each); see ``load``."""
  free = CANVAS_SIZE - ITEM_SIZE
  if not 0 <= max_shift <= min(right_corner, free) or right_corner > free:
    raise ValueError(f"Need 0 <= max_shift <= right_corner <= {free}; got max_shift="
                     f"{max_shift}, right_corner={right_corner}.")
  # One stream each, so that the first k composites do not depend on num_examples.
  left_rng, right_rng, shift_rng = rng.spawn(3)
  left_index = _cover(len(left.labels), num_examples, left_rng)
  right_index = _cover(len(right.labels), num_examples, right_rng)
  shifts = shift_rng.integers(0, max_shift + 1, size=(num_examples, 4))
  offsets = np.concatenate([shifts[:, :2], right_corner - shifts[:, 2:]], axis=1)
  canvas = compose(left.images[left_index], right.images[right_index], offsets,
                   combine=combine)
  x = nearest_resize(canvas, image_size)[..., None]
  if np.dtype(dtype) != np.uint8:
    x = np.multiply(x, np.float32(1 / 255), dtype=dtype)
  y = {"left": left.labels[left_index].astype(np.int32),
       "right": right.labels[right_index].astype(np.int32)}
  return Composites(x, y, left_index.astype(np.int32), right_index.astype(np.int32),
                    offsets.astype(np.int32))


def compose(left_NxHxW: np.ndarray, right_NxHxW: np.ndarray, offsets_Nx4: np.ndarray, *,
            size: int = CANVAS_SIZE, combine: str = "max") -> np.ndarray:
  """uint8 ``[N, size, size]``: each pair placed at its ``offsets`` and combined."""
  if combine not in ("max", "sum"):
    raise ValueError(f"combine must be 'max' or 'sum'; got {combine!r}.")
  n, h, w = left_NxHxW.shape
  canvas = np.zeros((n, size, size), np.uint8)
  for items, corners in ((left_NxHxW, offsets_Nx4[:, :2]), (right_NxHxW, offsets_Nx4[:, 2:])):
    # One slice assignment per distinct corner (at most (max_shift + 1)^2 of them).
    codes = corners[:, 0] * size + corners[:, 1]
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.diff(codes[order], prepend=-1))
    for rows in np.split(order, starts[1:]):
      r, c = corners[rows[0]]
      window = canvas[rows, r:r + h, c:c + w]
      if combine == "max":
        window = np.maximum(window, items[rows])
      else:
        window = np.minimum(window.astype(np.uint16) + items[rows], 255).astype(np.uint8)
      canvas[rows, r:r + h, c:c + w] = window
  return canvas


def nearest_resize(x_NxHxW: np.ndarray, size: int) -> np.ndarray:
  """``[N, size, size]``: source pixel ``floor((i + 0.5) * H / size)``, as PIL's NEAREST."""
  n, h, w = x_NxHxW.shape
  if (h, w) == (size, size):
    return x_NxHxW
  rows = np.minimum(((np.arange(size) + 0.5) * h / size).astype(np.int64), h - 1)
  cols = np.minimum(((np.arange(size) + 0.5) * w / size).astype(np.int64), w - 1)
  return x_NxHxW[:, rows[:, None], cols[None, :]]


def _cover(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
  """``count`` indices: permutations of ``range(n)``, concatenated, so each is used
  ``count // n`` or ``count // n + 1`` times."""
  reps = -(-count // n)
  return np.concatenate([rng.permutation(n) for _ in range(reps)])[:count]
