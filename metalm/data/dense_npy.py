"""Dense-prediction splits stored as one ``.npy`` file per example and field.

The layout of Liu et al.'s preprocessed NYUv2 and Cityscapes (MTAN, arXiv:1803.10704),
read by LibMTL, CAGrad, Nash-MTL and FAMO: ``<split>/<folder>/<i>.npy`` for examples
``i = 0 .. n-1``, one folder per field (``image``, ``label``, ``depth``, ...), arrays
channels-last. ``open_split`` checks every file's header (shape, numeric dtype) before
anything is read; ``DenseSplit`` reads examples lazily, so a split never has to fit in
memory, and batches them as ``step.MultiTaskBatch`` (``x`` images, ``y`` per task).
"""

import pathlib
import re
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from metalm.data import scale_crop
from metalm.mtl import step

_NPY_NAME = re.compile(r"^(0|[1-9][0-9]*)\.npy$")


class Field(NamedTuple):
  """One folder of a split: ``key`` names it in examples ("image" or a task name)."""

  key: str
  folder: str
  shape: tuple[int, ...]  # Per-example shape, channels-last.
  kind: str  # "image", "label", "depth" or "normal": the dtype and the augmentation.


class DenseSplit:
  """Examples ``0 .. n-1`` of one split, read from disk on access.

  ``split[i]`` is ``{"image": float32 [H, W, 3], <task>: ...}``; labels are int32 with
  -1 where a pixel is ignored, the other fields float32.
  """

  def __init__(self, root: pathlib.Path, fields: Sequence[Field], size: int, *,
               num_classes: int, dataset: str):
    self.root, self.fields, self.num_classes = root, tuple(fields), num_classes
    self._size, self._dataset = size, dataset

  @property
  def tasks(self) -> tuple[str, ...]:
    return tuple(f.key for f in self.fields if f.key != "image")

  def __len__(self) -> int:
    return self._size

  def path(self, field: Field, index: int) -> pathlib.Path:
    return self.root / field.folder / f"{index}.npy"

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    index = int(index)
    if not 0 <= index < self._size:
      raise IndexError(f"{self._dataset}: example {index} of a split of {self._size}.")
    return {f.key: self._read(f, index) for f in self.fields}

  def batch(self, indices: Sequence[int], *,
            augment_rng: np.random.Generator | None = None) -> step.MultiTaskBatch:
    """The examples at ``indices``, stacked; MTAN's augmentation if ``augment_rng``.

    Returns:
      ``MultiTaskBatch(x=images [B, H, W, 3], y={task: [B, ...]})``.
    """
    examples = [self[i] for i in indices]
    if augment_rng is not None:
      kinds = {f.key: f.kind for f in self.fields}
      examples = [scale_crop.mtan_augment(e, kinds, augment_rng) for e in examples]
    stacked = {f.key: np.stack([e[f.key] for e in examples]) for f in self.fields}
    return step.MultiTaskBatch(stacked.pop("image"), stacked)

  def iterate(self, batch_size: int, rng: np.random.Generator | None = None, *,
              augment: bool = False,
              drop_remainder: bool = True) -> Iterator[step.MultiTaskBatch]:
    """One epoch of batches; shuffled (and augmented if ``augment``) when ``rng`` is given."""
    if augment and rng is None:
      raise ValueError("augment=True needs an rng (np.random.Generator).")
    order = rng.permutation(self._size) if rng is not None else np.arange(self._size)
    stop = self._size - self._size % batch_size if drop_remainder else self._size
    for start in range(0, stop, batch_size):
      yield self.batch(order[start:start + batch_size], augment_rng=rng if augment else None)

  def _read(self, field: Field, index: int) -> np.ndarray:
    path = self.path(field, index)
    try:
      array = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001  (any read failure is named)
      raise ValueError(f"{self._dataset}: cannot read {path}: {error!r}") from error
    if array.shape != field.shape:  # The file changed since open_split checked it.
      raise ValueError(f"{self._dataset}: {path} has shape {list(array.shape)}, expected "
                       f"{list(field.shape)}.")
    if field.kind != "label":
      return array.astype(np.float32, copy=False)
    label = array.astype(np.int32)
    if (label != array).any() or label.min() < -1 or label.max() >= self.num_classes:
      raise ValueError(f"{self._dataset}: {path} must hold integer class ids in "
                       f"[0, {self.num_classes}) or -1 (ignored); found values in "
                       f"[{array.min()}, {array.max()}].")
    return label


def open_split(root: pathlib.Path, fields: Sequence[Field], *, size: int | None,
               num_classes: int, dataset: str, layout: str) -> DenseSplit:
  """Checks a split folder and returns its lazy ``DenseSplit``.

  Every folder must hold ``0.npy .. (n-1).npy`` with the same ``n`` (``size`` when not
  None); every file's header must give the field's shape and a numeric dtype.

  Raises:
    FileNotFoundError: naming the first missing folder or file.
    ValueError: naming a file that is not a ``.npy`` array of the expected shape, or a
      split of another size.
  """
  indices = {}
  for field in fields:
    folder = root / field.folder
    if not folder.is_dir():
      raise FileNotFoundError(f"{dataset}: {folder} does not exist. Expected {layout}.")
    indices[field] = {int(p.name[:-4]) for p in folder.iterdir() if _NPY_NAME.match(p.name)}
  n = max((max(found) + 1 for found in indices.values() if found), default=0)
  for field, found in indices.items():
    if len(found) != n:
      first = min(set(range(n)) - found)
      raise FileNotFoundError(
          f"{dataset}: {root / field.folder / f'{first}.npy'} does not exist ({field.folder}/ "
          f"has {len(found)} of the {n} examples other folders reach). Expected {layout}.")
  if n == 0:
    raise FileNotFoundError(f"{dataset}: {root / fields[0].folder / '0.npy'} does not exist. "
                            f"Expected {layout}.")
  if size is not None and n != size:
    raise ValueError(f"{dataset}: {root} holds {n} examples, expected {size}: an incomplete "
                     "or different copy (pass check_count=False to load it anyway).")
  for field in fields:
    for i in range(n):
      _check_header(root / field.folder / f"{i}.npy", field, dataset=dataset)
  return DenseSplit(root, fields, n, num_classes=num_classes, dataset=dataset)


def _check_header(path: pathlib.Path, field: Field, *, dataset: str) -> None:
  try:
    with open(path, "rb") as f:
      version = np.lib.format.read_magic(f)
      read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
      shape, _, dtype = read(f)
  except Exception as error:  # noqa: BLE001  (any parse failure is named)
    raise ValueError(f"{dataset}: {path} is not a .npy array ({error!r}); a partial "
                     "download or extraction is a common cause.") from error
  if tuple(shape) != field.shape or dtype.kind not in "fiub":
    raise ValueError(f"{dataset}: {path} holds {dtype} {list(shape)}; expected a numeric "
                     f"{field.kind} array of shape {list(field.shape)}.")

