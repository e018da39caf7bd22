"""Omniglot as class-disjoint meta-train / meta-val / meta-test splits.

Lake, Salakhutdinov & Tenenbaum 2015, "Human-level concept learning through
probabilistic program induction", Science 350(6266): 1623 characters of 50 alphabets,
20 drawings each.

Source files (``$METALM_DATA_DIR/omniglot``, described in its ``PROVENANCE.md``):
``images_background.npz`` and ``images_evaluation.npz`` (bool ``[C, 20, 105, 105]``,
True = background; row ``c`` is global character id ``c + 1``, resp. ``c + 965``),
``character_index.csv`` (row -> alphabet and ``characterNN`` folder) and
``vinyals_split/{train,val,test}.json``. Each is checked against its sha256.

Images are resized from 105x105 to ``image_size`` by exact area averaging (each output
pixel is the mean of the input area it covers, fractional pixels weighted; as OpenCV's
``INTER_AREA``), inverted so that ink is 255 and background 0 (as Finn et al. and Snell
et al. feed it), and stored as uint8 ``[C, 20, S, S, 1]``. Rotations by 0/90/180/270
degrees (counter-clockwise, ``np.rot90``) are new classes, as in Vinyals et al. 2016
(arXiv:1606.04080), Snell et al. 2017 (arXiv:1703.05175) and Finn et al. 2017
(arXiv:1703.03400). Class ``r * C + c`` of a split is rotation ``r`` of its character
``c`` (rotation-major).

Splits:
  * ``"vinyals"``: 1028 / 172 / 423 characters (torchmeta's JSON files), i.e.
    4112 / 688 / 1692 classes with four rotations.
  * ``"finn"``: Finn's MAML code pools all 1623 characters, shuffles them with
    ``random.seed(1); random.shuffle``, and takes the first 1200 for meta-training, of
    which the last 100 are held out for validation, and the remaining 423 for
    meta-test: 1100 / 100 / 423 characters (``finn_split(num_val=0)`` gives 1200 / 0 /
    423). Finn shuffles an ``os.listdir`` order, which depends on the filesystem, so
    his exact split cannot be recovered; we shuffle the sorted (alphabet, character)
    list with Python 3's ``random.Random(1)``: same sizes and procedure, not the same
    characters. Finn also resized with PIL's LANCZOS, which Pillow replaces by NEAREST
    for the 1-bit PNGs, and gave each class of a task a random rotation instead of
    adding rotated classes.

Loading the two .npz files (decompressing 358 MB of bool) and resizing takes about
2-3 s on a 2-core CPU; the result is kept in memory per process, and in
``cache_dir`` (a 25 MB .npz keyed by the source hashes) when one is given.
"""

import csv
import functools
import hashlib
import json
import os
import pathlib
import random
from typing import Mapping, NamedTuple, Sequence

import numpy as np

NUM_CHARACTERS = 1623
NUM_BACKGROUND = 964
EXAMPLES_PER_CLASS = 20
ROTATIONS = (0, 90, 180, 270)
SPLIT_NAMES = ("train", "val", "test")

# sha256 of the files as listed in $METALM_DATA_DIR/omniglot/PROVENANCE.md.
SHA256 = {
    "images_background.npz":
        "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
    "images_evaluation.npz":
        "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
    "character_index.csv":
        "8dc382fabf4f70854d053c35a34c87481fe3c9f785d78d1098385fbb6b7b166f",
    "vinyals_split/train.json":
        "3432d95c10f2959c3894a2bebe63f70600b5c567a912d13200699b0634d7b191",
    "vinyals_split/val.json":
        "4aca6cbef626e818dace533b4c46363830eaaa158f2d06e29beb3e9772258d5f",
    "vinyals_split/test.json":
        "c3604a268c3e6bfb5f010e839dd986d0f149bfc81a93cf5de239a0543effea86",
}
# The Vinyals split by alphabet, for the TFDS path (no JSON files there); the tests
# check it against the JSON files. Every other character is meta-train.
_VINYALS_VAL_ALPHABETS = ("Armenian", "Bengali", "Early_Aramaic", "Hebrew",
                          "Mkhedruli_(Georgian)")
_VINYALS_TEST_ALPHABETS = (
    "Kannada", "Keble", "Malayalam", "Manipuri", "Mongolian",
    "Old_Church_Slavonic_(Cyrillic)", "Oriya", "Sylheti", "Syriac_(Serto)", "Tengwar",
    "Tibetan", "ULOG")
_VINYALS_TEST_EXTRA = {("Gurmukhi", f"character{i}") for i in (42, 43, 44, 45)}
_CACHE_VERSION = "1"
_MEMORY = {}
_FIX = ("Set METALM_DATA_DIR to the folder that holds omniglot/ (or pass data_dir=), "
        "with the files listed in omniglot/PROVENANCE.md; or `pip install tensorflow` "
        "and call metalm.data.omniglot.load_tfds() (downloads through TFDS).")


class Characters(NamedTuple):
  """All 1623 characters; row ``i`` is global character id ``i + 1``."""

  images: np.ndarray  # [1623, 20, S, S] uint8, 255 = ink.
  alphabets: np.ndarray  # [1623] str, official alphabet folder names.
  characters: np.ndarray  # [1623] str, 'characterNN' within the alphabet.
  background: np.ndarray  # [1623] bool, from images_background.
  vinyals: np.ndarray  # [1623] str, 'train' / 'val' / 'test' (Vinyals et al. 2016).


class Split(NamedTuple):
  """The classes of one split, rotation-major."""

  images: np.ndarray  # [C, 20, S, S, 1] uint8, 255 = ink.
  char_ids: np.ndarray  # [C] int32, global character id 1..1623.
  rotations: np.ndarray  # [C] int32, degrees counter-clockwise.


class Splits(NamedTuple):
  """Class-disjoint meta-train, meta-val and meta-test splits."""

  train: Split
  val: Split
  test: Split


def load(data_dir=None, *, split: str | Mapping[str, np.ndarray] = "vinyals",
         image_size: int = 28, rotations: Sequence[int] = ROTATIONS, cache_dir=None,
         verify: bool = True) -> Splits:
  """Meta-train / val / test splits of Omniglot.

  Args:
    data_dir: the datasets folder holding ``omniglot/`` (or ``omniglot/`` itself);
      ``$METALM_DATA_DIR`` by default. With neither, loads through ``load_tfds``.
    split: ``"vinyals"``, ``"finn"``, or character indices per split name.
    image_size: side of the resized images.
    rotations: degrees (multiples of 90); each is a new class.
    cache_dir: where to keep the resized images between processes (optional).
    verify: check the sha256 of every source file.

  Returns:
    ``Splits(train, val, test)``.

  Raises:
    FileNotFoundError: a folder or file is missing (the message names it).
    ValueError: a file has the wrong hash or cannot be parsed (named).
  """
  if data_dir is None and not os.environ.get("METALM_DATA_DIR"):
    return load_tfds(split=split, image_size=image_size, rotations=rotations)
  chars = load_characters(data_dir, image_size=image_size, cache_dir=cache_dir,
                          verify=verify)
  return make_splits(chars, split_indices(chars, split), rotations)


def load_characters(data_dir=None, *, image_size: int = 28, cache_dir=None,
                    verify: bool = True) -> Characters:
  """All characters, resized (read-only arrays, cached in memory and ``cache_dir``)."""
  root = omniglot_dir(data_dir)
  paths = {name: root / name for name in SHA256}
  for path in [root, *paths.values()]:
    if not path.exists():
      raise FileNotFoundError(f"Omniglot: {path} does not exist. {_FIX}")
  digests = {name: _sha256(path) for name, path in paths.items()}
  if verify:
    for name, digest in digests.items():
      if digest != SHA256[name]:
        raise ValueError(
            f"Omniglot: {paths[name]} has sha256 {digest}, but PROVENANCE.md lists "
            f"{SHA256[name]}: the file is corrupt or another version. Copy it again, "
            "or pass verify=False to skip the check.")
  key = hashlib.sha256(
      f"{_CACHE_VERSION} {image_size} {sorted(digests.items())}".encode()).hexdigest()
  cache = None if cache_dir is None else (
      pathlib.Path(cache_dir) / f"omniglot_{image_size}px_{key[:16]}.npz")
  chars = _MEMORY.get(key) or _read_cache(cache, image_size) or _build(paths, image_size)
  if cache is not None and not cache.exists():
    _write_cache(cache, chars)
  for array in chars:
    array.flags.writeable = False
  _MEMORY[key] = chars
  return chars


def omniglot_dir(data_dir=None) -> pathlib.Path:
  """``<data_dir>/omniglot``, or ``data_dir`` itself if it holds the .npz files."""
  if data_dir is None:
    data_dir = os.environ.get("METALM_DATA_DIR")
    if not data_dir:
      raise FileNotFoundError(f"Omniglot: METALM_DATA_DIR is unset. {_FIX}")
  path = pathlib.Path(data_dir).expanduser()
  return path if (path / "images_background.npz").exists() else path / "omniglot"


def split_indices(chars: Characters, split: str | Mapping[str, np.ndarray]):
  """Character indices of each split name, for a split name or a given mapping."""
  if split == "vinyals":
    return vinyals_split(chars)
  if split == "finn":
    return finn_split(chars)
  if isinstance(split, str):
    raise ValueError(f"Unknown Omniglot split {split!r}; use 'vinyals' or 'finn'.")
  return split


def vinyals_split(chars: Characters) -> dict[str, np.ndarray]:
  """1028 / 172 / 423 characters (Vinyals et al. 2016, arXiv:1606.04080)."""
  return {name: np.flatnonzero(chars.vinyals == name) for name in SPLIT_NAMES}


def finn_split(chars: Characters, *, num_train: int = 1200, num_val: int = 100,
               seed: int = 1) -> dict[str, np.ndarray]:
  """Finn et al. 2017 (arXiv:1703.03400): a seeded shuffle of all characters.

  The first ``num_train - num_val`` characters are meta-train, the next ``num_val``
  meta-val, the rest (423) meta-test, as in ``data_generator.py`` of cbfinn/maml.
  """
  order = sorted(range(len(chars.alphabets)),
                 key=lambda i: (chars.alphabets[i], chars.characters[i]))
  random.Random(seed).shuffle(order)
  order = np.array(order)
  cut = num_train - num_val
  return {"train": order[:cut], "val": order[cut:num_train], "test": order[num_train:]}


def make_splits(chars: Characters, indices: Mapping[str, np.ndarray],
                rotations: Sequence[int] = ROTATIONS) -> Splits:
  """Stacks each split's characters under every rotation as new classes."""
  all_idx = np.concatenate([np.asarray(indices[n], np.int64) for n in SPLIT_NAMES])
  if len(np.unique(all_idx)) != len(all_idx):
    raise ValueError("Omniglot splits must be character-disjoint.")
  return Splits(*(_split(chars, np.asarray(indices[n], np.int64), rotations)
                  for n in SPLIT_NAMES))


def rotate(images: np.ndarray, degrees: int) -> np.ndarray:
  """Rotates ``[..., H, W]`` images counter-clockwise by a multiple of 90 degrees."""
  if degrees % 90:
    raise ValueError(f"Rotations must be multiples of 90 degrees; got {degrees}.")
  return np.rot90(images, k=degrees // 90, axes=(-2, -1))


def area_resize(x: np.ndarray, size: int) -> np.ndarray:
  """Exact area-average resize of ``[..., H, W]`` to ``[..., size, size]`` (float32)."""
  rows, cols = _area_matrix(x.shape[-2], size), _area_matrix(x.shape[-1], size)
  return rows @ x.astype(np.float32) @ cols.T


@functools.lru_cache(maxsize=8)
def _area_matrix(n: int, m: int) -> np.ndarray:
  """``[m, n]``: the overlap of output pixel i with input pixel j, rows summing to 1."""
  edges = np.arange(m + 1) * (n / m)
  lo = np.maximum(edges[:-1, None], np.arange(n)[None])
  hi = np.minimum(edges[1:, None], np.arange(1, n + 1)[None])
  return (np.clip(hi - lo, 0, None) * (m / n)).astype(np.float32)


def load_tfds(*, split: str | Mapping[str, np.ndarray] = "vinyals",
              image_size: int = 28, rotations: Sequence[int] = ROTATIONS,
              tfds_data_dir=None) -> Splits:
  """Omniglot through TensorFlow Datasets; ``load`` uses it only without a local dir.

  Downloads the official zips on first use, writes array_record files and reads them
  as data sources (the TensorFlow-free reading path). Untested here: it needs the
  network, and TFDS may need TensorFlow to prepare (``pip install tensorflow``).
  """
  import tensorflow_datasets as tfds  # Heavy; only this path needs it.

  builder = tfds.builder("omniglot", data_dir=tfds_data_dir, file_format="array_record")
  builder.download_and_prepare()
  sources = builder.as_data_source()
  names = builder.info.features["label"].names  # '<alphabet>_<0-based char index>'
  ink = np.zeros((NUM_CHARACTERS, EXAMPLES_PER_CLASS, 105, 105), bool)
  seen = np.zeros(NUM_CHARACTERS, np.int64)
  for source in (sources["train"], sources["test"]):
    for example in source:
      label = int(example["label"])
      ink[label, seen[label]] = np.asarray(example["image"])[..., 0] < 128
      seen[label] += 1
  if (seen != EXAMPLES_PER_CLASS).any():
    raise ValueError(f"TFDS omniglot: expected {EXAMPLES_PER_CLASS} drawings of each "
                     f"character; got {sorted(set(seen.tolist()))}.")
  alphabets, numbers = zip(*(name.rsplit("_", 1) for name in names), strict=True)
  characters = [f"character{int(n) + 1:02d}" for n in numbers]
  ink = _resize_ink(ink.reshape(-1, 105, 105), image_size)
  chars = Characters(ink.reshape(NUM_CHARACTERS, EXAMPLES_PER_CLASS, image_size, -1),
                     np.array(alphabets), np.array(characters),
                     np.arange(NUM_CHARACTERS) < NUM_BACKGROUND,
                     _embedded_vinyals(alphabets, characters))
  return make_splits(chars, split_indices(chars, split), rotations)


def _embedded_vinyals(alphabets, characters) -> np.ndarray:
  def name(alphabet, character):
    if alphabet in _VINYALS_VAL_ALPHABETS:
      return "val"
    test = alphabet in _VINYALS_TEST_ALPHABETS
    return "test" if test or (alphabet, character) in _VINYALS_TEST_EXTRA else "train"
  return np.array([name(a, c) for a, c in zip(alphabets, characters, strict=True)])


def _split(chars, idx, rotations) -> Split:
  base = chars.images[idx]
  images = np.stack([rotate(base, r) for r in rotations])[..., None]
  return Split(images.reshape(-1, *images.shape[2:]),
               np.tile(idx + 1, len(rotations)).astype(np.int32),
               np.repeat(np.asarray(rotations, np.int32), len(idx)))


def _build(paths, image_size) -> Characters:
  alphabets, characters = _read_index(paths["character_index.csv"])
  vinyals = _read_vinyals(paths, alphabets, characters)
  images = np.concatenate([
      _read_resized(paths["images_background.npz"], NUM_BACKGROUND, image_size),
      _read_resized(paths["images_evaluation.npz"], NUM_CHARACTERS - NUM_BACKGROUND,
                    image_size)])
  return Characters(images, alphabets, characters,
                    np.arange(NUM_CHARACTERS) < NUM_BACKGROUND, vinyals)


def _read_resized(path, num_chars, image_size):
  try:
    with np.load(path, allow_pickle=False) as npz:
      white = npz["images"]  # True = background.
  except Exception as error:
    raise ValueError(f"Omniglot: cannot read 'images' from {path}: {error!r}") from error
  expected = (num_chars, EXAMPLES_PER_CLASS, 105, 105)
  if white.shape != expected or white.dtype != bool:
    raise ValueError(f"Omniglot: {path} holds {white.dtype} {white.shape}; "
                     f"expected bool {expected}.")
  ink = _resize_ink(~white.reshape(-1, 105, 105), image_size)
  return ink.reshape(num_chars, EXAMPLES_PER_CLASS, image_size, image_size)


def _resize_ink(ink_NxHxW, size, chunk=4096):
  """uint8 ``[N, size, size]``, 255 = ink; in chunks to bound the float32 copy."""
  return np.concatenate([
      np.clip(np.rint(area_resize(ink_NxHxW[i:i + chunk], size) * 255), 0, 255)
      .astype(np.uint8) for i in range(0, len(ink_NxHxW), chunk)])


def _read_index(path):
  """Alphabet and character names of every row of the two .npz files."""
  try:
    with open(path, newline="") as f:
      rows = list(csv.DictReader(f))
    ok = len(rows) == NUM_CHARACTERS and all(
        int(r["char_id"]) == i + 1
        and r["set"] == ("background" if i < NUM_BACKGROUND else "evaluation")
        and int(r["npz_index"]) == (i if i < NUM_BACKGROUND else i - NUM_BACKGROUND)
        for i, r in enumerate(rows))
  except (OSError, KeyError, ValueError, csv.Error) as error:
    raise ValueError(f"Omniglot: cannot parse {path}: {error!r}") from error
  if not ok:
    raise ValueError(f"Omniglot: {path} does not list characters 1..1623 in npz order.")
  return (np.array([r["alphabet"] for r in rows]),
          np.array([r["character"] for r in rows]))


def _read_vinyals(paths, alphabets, characters) -> np.ndarray:
  row = {(bool(i < NUM_BACKGROUND), a, c): i
         for i, (a, c) in enumerate(zip(alphabets, characters, strict=True))}
  names = np.full(NUM_CHARACTERS, "", dtype="<U5")
  for name in SPLIT_NAMES:
    path = paths[f"vinyals_split/{name}.json"]
    try:
      with open(path) as f:
        tree = json.load(f)
      for set_name, alphabet_chars in tree.items():
        for alphabet, chars in alphabet_chars.items():
          for char in chars:
            i = row[({"background": True, "evaluation": False}[set_name], alphabet, char)]
            if names[i]:
              raise ValueError(f"{alphabet}/{char} is in two splits")
            names[i] = name
    except (OSError, KeyError, ValueError, AttributeError) as error:
      raise ValueError(f"Omniglot: cannot parse {path}: {error!r}") from error
  if (names == "").any():
    missing = int((names == "").sum())
    raise ValueError(f"Omniglot: the files in {paths['vinyals_split/train.json'].parent} "
                     f"leave {missing} characters out of the Vinyals split.")
  return names


def _sha256(path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _read_cache(path, image_size):
  if path is None or not path.exists():
    return None
  try:
    with np.load(path, allow_pickle=False) as npz:
      chars = Characters(*(npz[field] for field in Characters._fields))
  except Exception:  # noqa: BLE001  (a bad cache is rebuilt, never trusted)
    return None
  shape = (NUM_CHARACTERS, EXAMPLES_PER_CLASS, image_size, image_size)
  ok = chars.images.shape == shape and chars.images.dtype == np.uint8 and all(
      len(a) == NUM_CHARACTERS for a in chars)
  return chars if ok else None


def _write_cache(path, chars):
  if path is None:
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
  np.savez(tmp, **chars._asdict())
  os.replace(tmp, path)  # Atomic: readers see the old file or the whole new one.
