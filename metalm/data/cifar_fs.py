"""CIFAR-FS and FC100: few-shot splits of CIFAR-100's classes (32x32 RGB, 600 each).

CIFAR-100 (Krizhevsky 2009): 100 classes in 20 superclasses, 500 training and 100 test
images each. Few-shot splits pool both, 600 images per class:
  * CIFAR-FS, Bertinetto et al. 2019, "Meta-learning with differentiable closed-form
    solvers" (ICLR, arXiv:1805.08136): 64 / 16 / 20 random classes. ``CIFAR_FS_CLASSES``
    are the classes of their split files ``splits/bertinetto/{train,val,test}.txt``
    (github.com/bertinetto/r2d2), checked against torchmeta's
    ``assets/cifar100/cifar-fs/*.json``.
  * FC100, Oreshkin et al. 2018, "TADAM: Task dependent adaptive metric for improved
    few-shot learning" (NeurIPS, arXiv:1805.10123): split by superclass, 12 / 4 / 4
    superclasses, i.e. 60 / 20 / 20 classes. ``FC100_SUPERCLASSES`` are superclasses
    1-6, 9, 10, 15, 17-19 / 8, 11, 13, 16 / 0, 7, 12, 14 (as in torchmeta's
    ``assets/cifar100/fc100/*.json``).

Sources: ``$METALM_DATA_DIR/cifar-100-python/{train,test,meta}`` (Krizhevsky's python
pickles, or ``data_dir`` holding them), or TFDS ``cifar100`` read as an array_record
data source (no TensorFlow needed to read; preparing it from the download needs
TensorFlow, so prepare it elsewhere with ``file_format="array_record"`` and pass
``tfds_data_dir``). Both give the same arrays: per class, the training images in file
order, then the test images (TFDS records are put back in file order by their ``id``).
Classes of a split are in CIFAR-100's (alphabetical) order.
"""

import os
import pathlib
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from metalm.data import fewshot_images

NUM_CLASSES = 100
_DATASET = "CIFAR-100"
_LAYOUT = ("cifar-100-python/ holding train, test and meta, the python pickles of "
           "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz")
_FIX = ("Set METALM_DATA_DIR to the folder that holds cifar-100-python/ (or pass "
        f"data_dir=) with {_LAYOUT}; or pass tfds_data_dir= of a TFDS cifar100 prepared "
        "with file_format='array_record'.")
_VAL = ("beaver beetle butterfly camel cattle crab crocodile flatfish lamp maple_tree "
        "motorcycle otter sea shark television tractor")
_TEST = ("baby bed bicycle chimpanzee fox leopard man pickup_truck plain poppy rocket rose "
         "snail sweet_pepper table telephone wardrobe whale woman worm")
_TRAIN = (
    "apple aquarium_fish bear bee bottle bowl boy bridge bus can castle caterpillar chair "
    "clock cloud cockroach couch cup dinosaur dolphin elephant forest girl hamster house "
    "kangaroo keyboard lawn_mower lion lizard lobster mountain mouse mushroom oak_tree "
    "orange orchid palm_tree pear pine_tree plate porcupine possum rabbit raccoon ray road "
    "seal shrew skunk skyscraper snake spider squirrel streetcar sunflower tank tiger "
    "train trout tulip turtle willow_tree wolf")
# Bertinetto et al. 2019's split, sorted.
CIFAR_FS_CLASSES = {"train": tuple(_TRAIN.split()), "val": tuple(_VAL.split()),
                    "test": tuple(_TEST.split())}
# Oreshkin et al. 2018's split by superclass (CIFAR-100 coarse label indices in comments).
FC100_SUPERCLASSES = {
    "train": ("fish", "flowers", "food_containers", "fruit_and_vegetables",  # 1-4
              "household_electrical_devices", "household_furniture",  # 5, 6
              "large_man-made_outdoor_things", "large_natural_outdoor_scenes",  # 9, 10
              "reptiles", "trees", "vehicles_1", "vehicles_2"),  # 15, 17, 18, 19
    "val": ("large_carnivores", "large_omnivores_and_herbivores",  # 8, 11
            "non-insect_invertebrates", "small_mammals"),  # 13, 16
    "test": ("aquatic_mammals", "insects", "medium_mammals", "people"),  # 0, 7, 12, 14
}


class Cifar100(NamedTuple):
  """All 100 classes, in CIFAR-100's label order."""

  images: np.ndarray  # [100, E, 32, 32, 3] uint8; training images, then test images.
  class_names: np.ndarray  # [100] str, fine label names.
  superclasses: np.ndarray  # [100] str, the coarse label of each class.


def load(data_dir=None, *, split: str | Mapping[str, Sequence[str]] = "bertinetto",
         tfds_data_dir=None, sha256: Mapping[str, str] | None = None
         ) -> fewshot_images.Splits:
  """CIFAR-FS: meta-train / val / test splits of CIFAR-100's classes.

  Args:
    data_dir: the datasets folder holding ``cifar-100-python/`` (or that folder);
      ``$METALM_DATA_DIR`` by default; with neither (or with ``tfds_data_dir``), TFDS.
    split: ``"bertinetto"``, or class names per split name.
    tfds_data_dir: a TFDS data dir holding ``cifar100`` prepared as array_record.
    sha256: optional ``{file name in cifar-100-python/: hex digest}`` to check first.

  Returns:
    ``Splits`` of 64 / 16 / 20 classes; ``images`` uint8 ``[C, 600, 32, 32, 3]``.

  Raises:
    FileNotFoundError: a folder or file is missing (the message names it).
    ValueError: a file is malformed or a class name unknown (named).
  """
  if isinstance(split, str) and split != "bertinetto":
    raise ValueError(f"Unknown CIFAR-FS split {split!r}; use 'bertinetto' (FC100 is "
                     "cifar_fs.load_fc100).")
  classes = CIFAR_FS_CLASSES if isinstance(split, str) else split
  cifar = load_cifar100(data_dir, tfds_data_dir=tfds_data_dir, sha256=sha256)
  return make_splits(cifar, classes)


def load_fc100(data_dir=None, *, split: str = "oreshkin", tfds_data_dir=None,
               sha256: Mapping[str, str] | None = None) -> fewshot_images.Splits:
  """FC100: CIFAR-100 split by superclass, 60 / 20 / 20 classes.

  Args:
    data_dir: as for ``load``.
    split: ``"oreshkin"``.
    tfds_data_dir: as for ``load``.
    sha256: as for ``load``.

  Returns:
    ``Splits``; ``superclasses`` names each class's superclass.
  """
  if split != "oreshkin":
    raise ValueError(f"Unknown FC100 split {split!r}; use 'oreshkin'.")
  cifar = load_cifar100(data_dir, tfds_data_dir=tfds_data_dir, sha256=sha256)
  return make_splits(cifar, fc100_classes(cifar))


def fc100_classes(cifar: Cifar100) -> dict[str, list[str]]:
  """The class names of each FC100 split, in CIFAR-100's order."""
  known = set(cifar.superclasses.tolist())
  for name in (n for names in FC100_SUPERCLASSES.values() for n in names):
    if name not in known:
      raise ValueError(f"FC100: superclass {name!r} is not in the data "
                       f"(found {sorted(known)}).")
  return {split: [c for c, s in zip(cifar.class_names, cifar.superclasses, strict=True)
                  if s in names] for split, names in FC100_SUPERCLASSES.items()}


def make_splits(cifar: Cifar100, classes: Mapping[str, Sequence[str]]
                ) -> fewshot_images.Splits:
  """The splits holding the named classes (in the order given)."""
  index = {name: i for i, name in enumerate(cifar.class_names.tolist())}
  splits = []
  for split in fewshot_images.SPLIT_NAMES:
    unknown = [c for c in classes[split] if c not in index]
    if unknown:
      raise ValueError(f"{_DATASET}: unknown classes {unknown[:5]} in the {split} split.")
    idx = np.array([index[c] for c in classes[split]], np.int64)
    splits.append(fewshot_images.Split(cifar.images[idx], cifar.class_names[idx],
                                       cifar.superclasses[idx]))
  return fewshot_images.check_disjoint(fewshot_images.Splits(*splits), dataset=_DATASET)


def load_cifar100(data_dir=None, *, tfds_data_dir=None,
                  sha256: Mapping[str, str] | None = None) -> Cifar100:
  """All of CIFAR-100 by class, from the python pickles or from TFDS (see module doc)."""
  if data_dir is None and (tfds_data_dir is not None
                           or not os.environ.get("METALM_DATA_DIR")):
    return load_cifar100_tfds(tfds_data_dir)
  root = cifar100_dir(data_dir)
  paths = [root / name for name in ("train", "test", "meta")]
  fewshot_images.require([root, *paths], dataset=_DATASET, layout=_LAYOUT)
  fewshot_images.check_sha256(root, sha256, dataset=_DATASET)
  fine_names, coarse_names = _read(paths[2], ["fine_label_names", "coarse_label_names"])
  parts = []
  for path in paths[:2]:
    data, fine, coarse = _read(path, ["data", "fine_labels", "coarse_labels"])
    data, fine, coarse = np.asarray(data), np.asarray(fine), np.asarray(coarse)
    if (data.dtype != np.uint8 or data.shape[1:] != (3072,) or fine.shape != (len(data),)
        or coarse.shape != fine.shape):
      raise ValueError(f"{_DATASET}: {path} holds data {data.dtype} {data.shape} and "
                       f"{fine.shape} / {coarse.shape} labels; expected uint8 [N, 3072] "
                       "and N fine and coarse labels.")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # Rows are R, G, B planes.
    parts.append((images, fine, coarse, str(path)))
  return _by_class(parts, list(map(str, fine_names)), list(map(str, coarse_names)))


def cifar100_dir(data_dir=None) -> pathlib.Path:
  """``<data_dir>/cifar-100-python``, or ``data_dir`` itself if it holds ``meta``."""
  return fewshot_images.data_root(data_dir, "cifar-100-python", ["meta"],
                                  dataset=_DATASET, fix=_FIX)


def load_cifar100_tfds(tfds_data_dir=None) -> Cifar100:
  """CIFAR-100 from a prepared TFDS ``cifar100``, read as array_record data sources.

  Args:
    tfds_data_dir: the TFDS data dir (TFDS's default, ``~/tensorflow_datasets``, when
      None). Nothing is downloaded: preparing ``cifar100`` needs TensorFlow.
  """
  import tensorflow_datasets as tfds  # Heavy; only this path needs it.

  builder = tfds.builder("cifar100", data_dir=tfds_data_dir)
  where = f"TFDS cifar100 in {builder.data_dir}"
  if not builder.is_prepared():
    raise FileNotFoundError(
        f"{_DATASET}: {where} is not prepared. Prepare it where TensorFlow is installed: "
        "tfds.builder('cifar100', data_dir=..., file_format='array_record')"
        f".download_and_prepare(); or use the local files: {_FIX}")
  try:
    sources = builder.as_data_source()
  except Exception as error:  # noqa: BLE001  (a tfrecord dir cannot be a data source)
    raise ValueError(f"{_DATASET}: cannot read {where} as a data source ({error!r}); "
                     "prepare it with file_format='array_record'.") from error
  parts = []
  for split in ("train", "test"):
    examples = [sources[split][i] for i in range(len(sources[split]))]
    examples.sort(key=lambda e: _text(e["id"]))  # File order, as the pickles.
    parts.append((np.stack([np.asarray(e["image"], np.uint8) for e in examples]),
                  np.array([int(e["label"]) for e in examples]),
                  np.array([int(e["coarse_label"]) for e in examples]),
                  f"{where} ({split})"))
  features = builder.info.features
  return _by_class(parts, features["label"].names, features["coarse_label"].names)


def _read(path, keys):
  tree = fewshot_images.read_pickle(path, dataset=_DATASET, layout=_LAYOUT)
  return [fewshot_images.field(tree, [key], path, dataset=_DATASET, layout=_LAYOUT)
          for key in keys]


def _by_class(parts, fine_names, coarse_names) -> Cifar100:
  """Groups ``(images, fine, coarse, source)`` parts by fine label, part by part."""
  if len(fine_names) != NUM_CLASSES or len(coarse_names) != 20:
    raise ValueError(f"{_DATASET}: expected 100 fine and 20 coarse label names; got "
                     f"{len(fine_names)} and {len(coarse_names)}.")
  superclass = np.full(NUM_CLASSES, -1)
  per_class = [[] for _ in range(NUM_CLASSES)]
  for images, fine, coarse, source in parts:
    if fine.size and (fine.min() < 0 or fine.max() >= NUM_CLASSES or coarse.min() < 0
                      or coarse.max() >= 20):
      raise ValueError(f"{_DATASET}: {source} has labels out of range.")
    order = np.argsort(fine, kind="stable")
    counts = np.bincount(fine, minlength=NUM_CLASSES)
    for c, rows in enumerate(np.split(order, np.cumsum(counts)[:-1])):
      per_class[c].append(images[rows])
      coarse_c = np.unique(coarse[rows])
      if len(coarse_c) > 1 or (len(coarse_c) and superclass[c] not in (-1, coarse_c[0])):
        raise ValueError(f"{_DATASET}: class {fine_names[c]!r} has several superclasses "
                         f"in {source}.")
      superclass[c] = coarse_c[0] if len(coarse_c) else superclass[c]
  counts = [sum(len(x) for x in xs) for xs in per_class]
  if min(counts) != max(counts) or min(counts) == 0:
    raise ValueError(f"{_DATASET}: classes must have equal, non-zero image counts; got "
                     f"{min(counts)} to {max(counts)}.")
  return Cifar100(np.stack([np.concatenate(xs) for xs in per_class]),
                  np.array(list(map(str, fine_names))),
                  np.array([str(coarse_names[s]) for s in superclass]))


def _text(x) -> str:
  x = x.item() if isinstance(x, np.ndarray) else x
  return x.decode() if isinstance(x, bytes) else str(x)
