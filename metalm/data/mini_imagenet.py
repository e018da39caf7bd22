"""mini-ImageNet with Ravi & Larochelle's split: 64 / 16 / 20 classes of 600 images.

Vinyals et al. 2016 (arXiv:1606.04080) drew 100 ImageNet classes; Ravi & Larochelle 2017,
"Optimization as a Model for Few-Shot Learning" (ICLR), fixed the split used since:
64 meta-train, 16 meta-val and 20 meta-test classes, 600 images each, 84x84 RGB.
``RAVI_CLASSES`` lists their WordNet ids (from their ``{train,val,test}.csv``).

Two local layouts, under ``$METALM_DATA_DIR/mini_imagenet`` (or ``data_dir`` itself):
  * ``"pickle"``: ``mini-imagenet-cache-{train,val,test}.pkl``, each a dict with
    ``image_data`` (uint8 ``[N, 84, 84, 3]``) and ``class_dict`` (``{wnid: [row, ...]}``),
    as many repositories distribute Ravi's split (e.g. learn2learn's download).
  * ``"csv"``: Ravi's ``images/*.jpg`` with ``{train,val,test}.csv`` (header
    ``filename,label``). Images not already 84x84 are resized with PIL's LANCZOS, as
    Ravi's ``proc_images.py`` does.
``"auto"`` takes the pickles when ``mini-imagenet-cache-train.pkl`` exists.

Classes of a split are sorted by WordNet id; images keep file order. Each split is
checked against ``RAVI_CLASSES``; all classes of a split need equal image counts (600 in
the real data; the check does not insist on 600, so that small copies load too).
"""

import csv
import os
import pathlib
from typing import Mapping

import numpy as np

from metalm.data import fewshot_images

NUM_CLASSES = {"train": 64, "val": 16, "test": 20}
IMAGE_SIZE = 84
_DATASET = "mini-ImageNet"
_LAYOUT = ("mini_imagenet/ holding either mini-imagenet-cache-{train,val,test}.pkl (dicts "
           "with 'image_data' uint8 [N, 84, 84, 3] and 'class_dict' {wnid: [row, ...]}) "
           "or images/*.jpg with {train,val,test}.csv (header 'filename,label')")
_FIX = ("Set METALM_DATA_DIR to the folder that holds mini_imagenet/ (or pass data_dir=) "
        f"with {_LAYOUT}.")
_VAL = ("n01855672 n02091244 n02114548 n02138441 n02174001 n02950826 n02971356 n02981792 "
        "n03075370 n03417042 n03535780 n03584254 n03770439 n03773504 n03980874 n09256479")
_TEST = ("n01930112 n01981276 n02099601 n02110063 n02110341 n02116738 n02129165 n02219486 "
         "n02443484 n02871525 n03127925 n03146219 n03272010 n03544143 n03775546 n04146614 "
         "n04149813 n04418357 n04522168 n07613480")
_TRAIN = (
    "n01532829 n01558993 n01704323 n01749939 n01770081 n01843383 n01910747 n02074367 "
    "n02089867 n02091831 n02101006 n02105505 n02108089 n02108551 n02108915 n02111277 "
    "n02113712 n02120079 n02165456 n02457408 n02606052 n02687172 n02747177 n02795169 "
    "n02823428 n02966193 n03017168 n03047690 n03062245 n03207743 n03220513 n03337140 "
    "n03347037 n03400231 n03476684 n03527444 n03676483 n03838899 n03854065 n03888605 "
    "n03908618 n03924679 n03998194 n04067472 n04243546 n04251144 n04258138 n04275548 "
    "n04296562 n04389033 n04435653 n04443257 n04509417 n04515003 n04596742 n04604644 "
    "n04612504 n06794110 n07584110 n07697537 n07747607 n09246464 n13054560 n13133613")
# Ravi & Larochelle 2017's split, sorted WordNet ids.
RAVI_CLASSES = {"train": tuple(_TRAIN.split()), "val": tuple(_VAL.split()),
                "test": tuple(_TEST.split())}


def load(data_dir=None, *, split: str = "ravi", layout: str = "auto",
         image_size: int = IMAGE_SIZE, sha256: Mapping[str, str] | None = None,
         num_threads: int | None = None) -> fewshot_images.Splits:
  """Meta-train / val / test splits of mini-ImageNet.

  Args:
    data_dir: the datasets folder holding ``mini_imagenet/`` (or that folder itself);
      ``$METALM_DATA_DIR`` by default.
    split: ``"ravi"`` (the only published split).
    layout: ``"auto"``, ``"pickle"`` or ``"csv"`` (see the module docstring).
    image_size: side of the images (resized with LANCZOS when not 84).
    sha256: optional ``{file name relative to the folder: hex digest}`` to check first.
    num_threads: JPEG decoding threads (csv layout); one per CPU by default.

  Returns:
    ``Splits``; ``images`` uint8 ``[C, E, S, S, 3]``, ``class_names`` WordNet ids,
    ``superclasses`` empty strings.

  Raises:
    FileNotFoundError: a folder or file is missing (the message names it).
    ValueError: a file is malformed, or a split's classes are not Ravi's (named).
  """
  if split != "ravi":
    raise ValueError(f"Unknown mini-ImageNet split {split!r}; use 'ravi'.")
  if layout not in ("auto", "pickle", "csv"):
    raise ValueError(f"Unknown mini-ImageNet layout {layout!r}; use 'auto', 'pickle' or "
                     "'csv'.")
  root = mini_imagenet_dir(data_dir)
  fewshot_images.require([root], dataset=_DATASET, layout=_LAYOUT)
  fewshot_images.check_sha256(root, sha256, dataset=_DATASET)
  if layout == "auto":
    layout = "pickle" if (root / _pickle_name("train")).exists() else "csv"
  read = _read_pickle if layout == "pickle" else _read_csv
  splits = []
  for name in fewshot_images.SPLIT_NAMES:
    images, wnids, source = read(root, name, image_size, num_threads)
    fewshot_images.check_classes(
        wnids, RAVI_CLASSES[name], what=f"{_DATASET}: {source}",
        source=f"Ravi & Larochelle's {name} split")
    splits.append(fewshot_images.Split(images, np.array(wnids), np.full(len(wnids), "")))
  return fewshot_images.check_disjoint(fewshot_images.Splits(*splits), dataset=_DATASET)


def mini_imagenet_dir(data_dir=None) -> pathlib.Path:
  """``<data_dir>/mini_imagenet``, or ``data_dir`` itself if it holds the files."""
  return fewshot_images.data_root(
      data_dir, "mini_imagenet", [_pickle_name("train"), "train.csv"], dataset=_DATASET,
      fix=_FIX)


def _pickle_name(split: str) -> str:
  return f"mini-imagenet-cache-{split}.pkl"


def _read_pickle(root, split, image_size, num_threads):
  del num_threads
  path = root / _pickle_name(split)
  tree = fewshot_images.read_pickle(path, dataset=_DATASET, layout=_LAYOUT)
  images = fewshot_images.field(tree, ["image_data"], path, dataset=_DATASET,
                                layout=_LAYOUT)
  class_dict = fewshot_images.field(tree, ["class_dict"], path, dataset=_DATASET,
                                    layout=_LAYOUT)
  if (not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4
      or images.shape[3] != 3 or not isinstance(class_dict, Mapping)):
    raise ValueError(f"{_DATASET}: {path} holds image_data "
                     f"{getattr(images, 'dtype', type(images).__name__)} "
                     f"{getattr(images, 'shape', '')} and class_dict "
                     f"{type(class_dict).__name__}; expected uint8 [N, 84, 84, 3] and a dict.")
  wnids = sorted(map(str, class_dict))
  by_name = {str(k): v for k, v in class_dict.items()}
  try:
    rows = [np.asarray(by_name[w], np.int64).reshape(-1) for w in wnids]
  except (TypeError, ValueError) as error:
    raise ValueError(f"{_DATASET}: {path}: class_dict values must be lists of row "
                     f"indices: {error!r}") from error
  every = np.concatenate(rows) if rows else np.zeros(0, np.int64)
  if not np.array_equal(np.sort(every), np.arange(len(images))):
    raise ValueError(f"{_DATASET}: {path}: class_dict must assign each of the "
                     f"{len(images)} rows of image_data to exactly one class.")
  images = fewshot_images.resize_images(images, image_size)
  stacked = fewshot_images.stack_classes(images, rows, what=f"{_DATASET}: {path}",
                                         class_names=wnids)
  return stacked, wnids, str(path)


def _read_csv(root, split, image_size, num_threads):
  path = root / f"{split}.csv"
  fewshot_images.require([path, root / "images"], dataset=_DATASET, layout=_LAYOUT)
  try:
    with open(path, newline="") as f:
      reader = csv.reader(f)
      header = next(reader, None)
      rows = [r for r in reader if r]
  except (OSError, UnicodeDecodeError, csv.Error) as error:
    raise ValueError(f"{_DATASET}: cannot read {path}: {error!r}") from error
  bad = next((r for r in rows if len(r) != 2), None)
  if header != ["filename", "label"] or bad is not None:
    raise ValueError(f"{_DATASET}: {path} must have the header 'filename,label' and two "
                     f"fields a row; got header {header} and row {bad}.")
  wnids = sorted({label for _, label in rows})
  index = {w: i for i, w in enumerate(wnids)}
  rows_C = [[] for _ in wnids]
  for i, (_, label) in enumerate(rows):
    rows_C[index[label]].append(i)
  files = [root / "images" / filename for filename, _ in rows]
  missing = next((f for f in files if not f.exists()), None)
  if missing is not None:
    raise FileNotFoundError(f"{_DATASET}: {missing} (listed in {path}) does not exist. "
                            f"Expected {_LAYOUT}.")
  images = fewshot_images.decode_images(
      [os.fspath(f) for f in files], image_size, num_threads=num_threads,
      describe=lambda i: f"{files[i]} (listed in {path})")
  stacked = fewshot_images.stack_classes(
      images, [np.array(r, np.int64) for r in rows_C], what=f"{_DATASET}: {path}",
      class_names=wnids)
  return stacked, wnids, str(path)
