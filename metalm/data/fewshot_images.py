"""Shared pieces of the few-shot image loaders: split types, safe pickles, decoding.

``mini_imagenet``, ``tiered_imagenet`` and ``cifar_fs`` return ``Splits`` of class-indexed
uint8 RGB arrays, the form ``episodic.sampler`` draws episodes from. Their source files
are pickles as distributed by the papers' authors; they are read with an unpickler
that builds only numpy arrays and builtin containers, so a tampered file cannot run
code. Every error names the file and what was expected of it.
"""

import concurrent.futures
import hashlib
import io
import os
import pathlib
import pickle
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
from PIL import Image

SPLIT_NAMES = ("train", "val", "test")


class Split(NamedTuple):
  """The classes of one split; class ``c`` is ``images[c]``, named ``class_names[c]``."""

  images: np.ndarray | tuple[np.ndarray, ...]  # [C, E, H, W, 3] uint8, or C [E_c, H, W, 3].
  class_names: np.ndarray  # [C] str: WordNet id or CIFAR-100 class name.
  superclasses: np.ndarray  # [C] str: CIFAR-100 superclass, tiered category; '' if none.


class Splits(NamedTuple):
  """Class-disjoint meta-train, meta-val and meta-test splits."""

  train: Split
  val: Split
  test: Split


def data_root(data_dir, folder: str, markers: Sequence[str], *, dataset: str,
              fix: str) -> pathlib.Path:
  """``<data_dir>/<folder>``, or ``data_dir`` itself if it holds one of ``markers``.

  ``data_dir`` defaults to ``$METALM_DATA_DIR``; with neither, a FileNotFoundError
  ending in ``fix``.
  """
  if data_dir is None:
    data_dir = os.environ.get("METALM_DATA_DIR")
    if not data_dir:
      raise FileNotFoundError(f"{dataset}: METALM_DATA_DIR is unset. {fix}")
  path = pathlib.Path(data_dir).expanduser()
  return path if any((path / m).exists() for m in markers) else path / folder


def require(paths: Sequence[pathlib.Path], *, dataset: str, layout: str) -> None:
  """Raises a FileNotFoundError naming the first missing path and the expected layout."""
  for path in paths:
    if not path.exists():
      raise FileNotFoundError(f"{dataset}: {path} does not exist. Expected {layout}.")


def check_sha256(root: pathlib.Path, expected: Mapping[str, str] | None, *,
                 dataset: str) -> None:
  """Checks ``root / name`` against each ``name: hex digest`` of ``expected``."""
  for name, digest in (expected or {}).items():
    path = root / name
    if not path.exists():
      raise FileNotFoundError(f"{dataset}: {path} (listed in sha256=) does not exist.")
    found = hashlib.sha256()
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        found.update(block)
    if found.hexdigest() != digest.lower():
      raise ValueError(f"{dataset}: {path} has sha256 {found.hexdigest()}, expected "
                       f"{digest}: the file is corrupt or another version.")


# What the pickles of these data sets reference: numpy arrays, dtypes and scalars (under
# numpy 1 and 2 module names) and builtin containers.
_NUMPY_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"),
                  ("numpy.core.multiarray", "_reconstruct"),
                  ("numpy.core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer")}
_BUILTIN_GLOBALS = {(m, n) for m in ("builtins", "__builtin__")  # Python 3, 2
                    for n in ("list", "dict", "set", "frozenset", "tuple", "bytearray",
                              "bytes", "str", "int", "float")}
_SAFE_GLOBALS = _NUMPY_GLOBALS | _BUILTIN_GLOBALS | {("collections", "OrderedDict"),
                                                     ("_codecs", "encode")}  # bytes, protocol 2
_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


class _SafeUnpickler(pickle.Unpickler):

  def find_class(self, module, name):
    module = module.replace("numpy._core", "numpy.core")
    if (module, name) not in _SAFE_GLOBALS:
      raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
    if module.startswith("numpy.core"):
      module = module.replace("numpy.core", _NUMPY_CORE)
    return super().find_class(module, name)


def read_pickle(path: pathlib.Path, *, dataset: str, layout: str):
  """The object in a pickle (Python 2 strings read as latin-1, as numpy requires)."""
  try:
    with open(path, "rb") as f:
      return _SafeUnpickler(f, encoding="latin1").load()
  except FileNotFoundError:
    raise FileNotFoundError(f"{dataset}: {path} does not exist. Expected {layout}.") from None
  except Exception as error:  # noqa: BLE001  (any parse failure is named)
    raise ValueError(f"{dataset}: cannot unpickle {path}: {error!r}. Expected {layout}; "
                     "an HTML page or a partial download is a common cause.") from error


def field(tree, keys: Sequence[str], path, *, dataset: str, layout: str):
  """``tree[key]`` for the first of ``keys`` it holds; a ValueError naming the file."""
  if isinstance(tree, Mapping):
    for key in keys:
      if key in tree:
        return tree[key]
  found = sorted(map(str, tree)) if isinstance(tree, Mapping) else type(tree).__name__
  raise ValueError(f"{dataset}: {path} has no {' or '.join(map(repr, keys))} "
                   f"(found {found}). Expected {layout}.")


def decode_images(items: Sequence, size: int, *, describe: Callable[[int], str],
                  num_threads: int | None = None) -> np.ndarray:
  """Decodes encoded images (bytes, uint8 arrays or file paths) to RGB.

  Images of another size are resized to ``size x size`` with PIL's LANCZOS, as Ravi &
  Larochelle's ``proc_images.py`` made mini-ImageNet's 84x84 images.

  Args:
    items: N encoded images: ``bytes``, 1-D uint8 arrays of the bytes, or paths.
    size: side of the output images.
    describe: ``i -> str`` naming item ``i`` in errors (file, index).
    num_threads: decoding threads; one per CPU by default.

  Returns:
    uint8 ``[N, size, size, 3]``.
  """
  out = np.empty((len(items), size, size, 3), np.uint8)

  def work(rows):
    for i in rows:
      item = items[i]
      if isinstance(item, np.ndarray):
        item = item.tobytes()
      try:
        with Image.open(io.BytesIO(item) if isinstance(item, bytes) else item) as image:
          out[i] = _rgb(image, size)
      except Exception as error:  # noqa: BLE001  (any decoding failure is named)
        raise ValueError(f"cannot decode {describe(i)}: {error!r}") from error

  threads = num_threads or os.cpu_count() or 1
  chunks = np.array_split(np.arange(len(items)), 4 * threads)
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    list(pool.map(work, chunks))  # PIL's decoders release the GIL, in part.
  return out


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
  """uint8 ``[N, H, W, 3]`` resized to ``[N, size, size, 3]`` (LANCZOS; a no-op if equal)."""
  if images.shape[1:3] == (size, size):
    return images
  return np.stack([_rgb(Image.fromarray(x), size) for x in images])


def _rgb(image: Image.Image, size: int) -> np.ndarray:
  image = image.convert("RGB")
  if image.size != (size, size):
    image = image.resize((size, size), resample=Image.LANCZOS)
  return np.asarray(image)


def stack_classes(images: np.ndarray, rows_C: Sequence[np.ndarray], *, what: str,
                  class_names: Sequence[str]) -> np.ndarray:
  """``[C, E, ...]`` from the row indices of each class; all classes need E rows."""
  counts = np.array([len(r) for r in rows_C])
  if len(counts) and (counts != counts[0]).any():
    low = int(np.argmin(counts))
    raise ValueError(f"{what}: classes must have equal image counts to stack; class "
                     f"{class_names[low]!r} has {counts[low]}, class "
                     f"{class_names[int(np.argmax(counts))]!r} has {counts.max()}.")
  rows = np.concatenate(rows_C) if len(rows_C) else np.zeros(0, np.int64)
  if not np.array_equal(rows, np.arange(len(images))):
    images = images[rows]  # A copy; files already in class order are only reshaped.
  return images.reshape(len(rows_C), -1, *images.shape[1:])


def check_classes(found: Sequence[str], expected: Sequence[str], *, what: str,
                  source: str) -> None:
  """Raises a ValueError listing missing and unexpected class names."""
  missing = sorted(set(expected) - set(found))
  extra = sorted(set(found) - set(expected))
  if missing or extra or len(found) != len(expected):
    raise ValueError(f"{what}: expected the {len(expected)} classes of {source}; found "
                     f"{len(found)}, missing {missing[:5]}{'...' if len(missing) > 5 else ''}"
                     f", unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}.")


def check_disjoint(splits: Splits, *, dataset: str) -> Splits:
  """Returns ``splits`` after checking that no class name is in two splits."""
  for i, a in enumerate(SPLIT_NAMES):
    for b in SPLIT_NAMES[i + 1:]:
      shared = set(getattr(splits, a).class_names) & set(getattr(splits, b).class_names)
      if shared:
        raise ValueError(f"{dataset}: classes {sorted(shared)[:5]} are in both the {a} "
                         f"and the {b} split.")
  return splits
