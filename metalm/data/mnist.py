"""MNIST and Fashion-MNIST from their IDX files.

LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
recognition"; Xiao, Rasul & Vollgraf 2017, "Fashion-MNIST" (arXiv:1708.07747).

Source files (``$METALM_DATA_DIR/mnist`` and ``$METALM_DATA_DIR/fashion_mnist``, each
described in its ``PROVENANCE.md``): ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
gzip-compressed (``.gz``, as distributed) or not. Each is checked against the sha256
listed there: of the ``.gz`` file, or of its decompressed bytes (so a re-compressed
copy of the right data passes). The IDX header (magic number, dtype, dimensions) and
the data length are checked too; every error names the file.
"""

import gzip
import hashlib
import os
import pathlib
import zlib
from typing import NamedTuple

import numpy as np

from metalm.data import fewshot_images

NAMES = ("mnist", "fashion_mnist")
SPLITS = ("train", "test")
NUM_EXAMPLES = {"train": 60000, "test": 10000}
IMAGE_SIZE = 28
NUM_CLASSES = 10
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# sha256 as listed in <name>/PROVENANCE.md: (of the .gz file, of the decompressed IDX).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "train-labels-idx1-ubyte": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "t10k-images-idx3-ubyte": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train-labels-idx1-ubyte": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "t10k-images-idx3-ubyte": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
}
_SOURCES = {"mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/ (torchvision's "
                     "mirror of yann.lecun.com/exdb/mnist)",
            "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist "
                             "(data/fashion/)"}
# IDX type codes (the third magic byte) -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MEMORY = {}


class Arrays(NamedTuple):
  """One split of MNIST or Fashion-MNIST."""

  images: np.ndarray  # [N, 28, 28] uint8, 0 = background.
  labels: np.ndarray  # [N] int32 in 0..9.


def load(name: str = "mnist", split: str = "train", *, data_dir=None,
         verify: bool = True) -> Arrays:
  """One split of MNIST or Fashion-MNIST (read-only arrays, cached per process).

  Args:
    name: ``"mnist"`` or ``"fashion_mnist"``.
    split: ``"train"`` (60000) or ``"test"`` (10000).
    data_dir: the datasets folder holding ``<name>/`` (or that folder itself);
      ``$METALM_DATA_DIR`` by default. With neither, loads through ``load_tfds``.
    verify: check each file's sha256 against ``PROVENANCE.md``.

  Returns:
    ``Arrays(images, labels)``.

  Raises:
    FileNotFoundError: a folder or file is missing (the message names it).
    ValueError: a file has the wrong hash or is not the expected IDX (named).
  """
  _check_args(name, split)
  if data_dir is None and not os.environ.get("METALM_DATA_DIR"):
    return load_tfds(name, split)
  root = fewshot_images.data_root(data_dir, name, [f + ".gz" for f in FILES[split]]
                                  + list(FILES[split]), dataset=_title(name), fix=_fix(name))
  images_path, labels_path = (_find(root, f, name) for f in FILES[split])
  images = _read(images_path, name, verify)
  labels = _read(labels_path, name, verify)
  n = NUM_EXAMPLES[split]
  if images.shape != (n, IMAGE_SIZE, IMAGE_SIZE) or images.dtype != np.uint8:
    raise ValueError(f"{_title(name)}: {images_path} holds {images.dtype} {images.shape}; "
                     f"expected uint8 {(n, IMAGE_SIZE, IMAGE_SIZE)}.")
  top = int(labels.max()) if labels.size else None
  if labels.shape != (n,) or labels.dtype != np.uint8 or top >= NUM_CLASSES:
    raise ValueError(f"{_title(name)}: {labels_path} holds {labels.dtype} {labels.shape} "
                     f"with maximum {top}; expected uint8 ({n},) in 0..9.")
  arrays = Arrays(images, labels.astype(np.int32))
  for array in arrays:
    array.flags.writeable = False
  return arrays


def read_idx(path) -> np.ndarray:
  """The array in an IDX file, gzip-compressed or not (a ValueError names a bad file)."""
  return parse_idx(_read_bytes(pathlib.Path(path)), path)


def parse_idx(data: bytes, path="<bytes>") -> np.ndarray:
  """Parses IDX bytes: magic ``00 00 <type> <ndim>``, big-endian int32 dims, data."""
  if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
    raise ValueError(f"{path} is not an IDX file: its magic number is {data[:4].hex()!r}, "
                     "expected 0000 08 0<ndim> (e.g. 00000803 for images, 00000801 for "
                     "labels); an HTML page or a partial download is a common cause.")
  ndim = data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(f"{path} is truncated: {len(data)} bytes, shorter than its "
                     f"{header}-byte IDX header.")
  shape = tuple(int(d) for d in np.frombuffer(data, ">i4", ndim, offset=4))
  dtype = np.dtype(_IDX_DTYPES[data[2]])
  expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(data) != expected:
    raise ValueError(f"{path} is {'truncated' if len(data) < expected else 'too long'}: "
                     f"its header says {shape} {dtype.name}, {expected} bytes in all, but "
                     f"it has {len(data)}.")
  return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_tfds(name: str = "mnist", split: str = "train", *, tfds_data_dir=None) -> Arrays:
  """MNIST or Fashion-MNIST through TensorFlow Datasets (array_record data source).

  Downloads on first use. Untested here: it needs the network, and TFDS may need
  TensorFlow to prepare (``pip install tensorflow``).
  """
  _check_args(name, split)
  import tensorflow_datasets as tfds  # Heavy; only this path needs it.

  builder = tfds.builder(name, data_dir=tfds_data_dir, file_format="array_record")
  builder.download_and_prepare()
  source = builder.as_data_source()[split]
  images = np.stack([np.asarray(e["image"])[..., 0] for e in source]).astype(np.uint8)
  labels = np.array([int(e["label"]) for e in source], np.int32)
  return Arrays(images, labels)


def _check_args(name, split):
  if name not in NAMES:
    raise ValueError(f"Unknown data set {name!r}; use one of {NAMES}.")
  if split not in SPLITS:
    raise ValueError(f"Unknown split {split!r}; use one of {SPLITS}.")


def _title(name):
  return {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}[name]


def _fix(name):
  return (f"Set METALM_DATA_DIR to the folder that holds {name}/ (or pass data_dir=), with "
          "the four IDX files {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from "
          f"{_SOURCES[name]}; or call metalm.data.mnist.load_tfds() (downloads through "
          "TFDS).")


def _find(root, base, name):
  for path in (root / (base + ".gz"), root / base):
    if path.exists():
      return path
  raise FileNotFoundError(f"{_title(name)}: neither {root / (base + '.gz')} nor "
                          f"{root / base} exists. {_fix(name)}")


def _read(path, name, verify):
  stat = path.stat()
  key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
  array = _MEMORY.get(key)
  if array is not None and not verify:
    return array
  raw = path.read_bytes()
  data = None
  if verify:
    gz_digest, idx_digest = SHA256[name][path.name.removesuffix(".gz")]
    found = hashlib.sha256(raw).hexdigest()
    if found not in (gz_digest, idx_digest):
      data = _decompress(raw, path)  # A re-compressed copy of the right data passes.
      if data is raw or hashlib.sha256(data).hexdigest() != idx_digest:
        raise ValueError(
            f"{_title(name)}: {path} has sha256 {found}, but {name}/PROVENANCE.md lists "
            f"{gz_digest} (.gz) and {idx_digest} (decompressed IDX): the file is corrupt "
            f"or another version. Copy it again, or pass verify=False. {_fix(name)}")
  if array is None:
    array = parse_idx(_decompress(raw, path) if data is None else data, path)
    array.flags.writeable = False
    _MEMORY[key] = array
  return array


def _read_bytes(path):
  try:
    raw = path.read_bytes()
  except FileNotFoundError:
    raise FileNotFoundError(f"{path} does not exist.") from None
  return _decompress(raw, path)


def _decompress(raw, path):
  """The bytes of a gzip file (recognized by its magic 1f 8b), or ``raw`` itself."""
  if raw[:2] != b"\x1f\x8b":
    return raw
  try:
    return gzip.decompress(raw)
  except (EOFError, OSError, zlib.error) as error:
    raise ValueError(f"{path} is a corrupt or truncated gzip file: {error!r}. Copy it "
                     "again.") from error
