"""tiered-ImageNet: 608 ImageNet classes under 34 categories, split by category.

Ren et al. 2018, "Meta-Learning for Semi-Supervised Few-Shot Classification" (ICLR,
arXiv:1803.00676): 20 / 6 / 8 categories give 351 / 97 / 160 meta-train / val / test
classes (448,695 / 124,261 / 206,209 images of 84x84 RGB; up to 1,300 per class).

Local layouts, under ``$METALM_DATA_DIR/tiered_imagenet`` (or ``data_dir`` itself), as
Ren's code writes them (github.com/renmengye/few-shot-ssl-public):
  * ``"png"``: ``{split}_images_png.pkl``, a list of PNG-encoded images (uint8 arrays
    of the bytes, or ``bytes``), with ``{split}_labels.pkl``.
  * ``"npz"``: ``{split}_images.npz`` (``images`` uint8 ``[N, 84, 84, 3]``, what Ren's
    ``decompress`` writes and e.g. MetaOptNet distributes) with ``{split}_labels.pkl``.
``"auto"`` takes the PNG pickles when ``train_images_png.pkl`` exists.

``{split}_labels.pkl`` is a dict with ``label_specific`` (``[N]`` class of each image,
``0..C-1``; ``labels`` is accepted too), and optionally ``label_specific_str`` (``[C]``
WordNet ids), ``label_general`` (``[N]`` category) and ``label_general_str``.

Colour order: Ren's ``decompress`` decodes the PNGs with ``cv2.imdecode``, so the
``.npz`` holds BGR; the PNGs themselves are ordinary RGB files. Both layouts load as RGB
(``npz_bgr=False`` reads an ``.npz`` that already is RGB).

Classes have unequal image counts, so a split's ``images`` is a tuple of ``C`` arrays
``[E_c, 84, 84, 3]`` (views into one array, class by class, file order within a class),
which ``episodic.sampler`` takes as it is; ``examples_per_class=E`` keeps the first ``E``
images of each class instead and gives one ``[C, E, 84, 84, 3]`` array.
"""

import pathlib
from typing import Mapping

import numpy as np

from metalm.data import fewshot_images

NUM_CLASSES = {"train": 351, "val": 97, "test": 160}
NUM_CATEGORIES = {"train": 20, "val": 6, "test": 8}
IMAGE_SIZE = 84
_DATASET = "tiered-ImageNet"
_LAYOUT = ("tiered_imagenet/ holding {train,val,test}_labels.pkl (dicts with "
           "'label_specific' [N] and optionally 'label_specific_str', 'label_general', "
           "'label_general_str') and either {train,val,test}_images_png.pkl (lists of "
           "PNG-encoded images) or {train,val,test}_images.npz ('images' uint8 "
           "[N, 84, 84, 3])")
_FIX = ("Set METALM_DATA_DIR to the folder that holds tiered_imagenet/ (or pass "
        f"data_dir=) with {_LAYOUT}.")


def load(data_dir=None, *, split: str = "ren", layout: str = "auto",
         image_size: int = IMAGE_SIZE, examples_per_class: int | None = None,
         npz_bgr: bool = True, sha256: Mapping[str, str] | None = None,
         num_threads: int | None = None) -> fewshot_images.Splits:
  """Meta-train / val / test splits of tiered-ImageNet.

  Decoding the 779,165 PNGs takes minutes on a few cores; the images take 16.5 GB.

  Args:
    data_dir: the datasets folder holding ``tiered_imagenet/`` (or that folder itself);
      ``$METALM_DATA_DIR`` by default.
    split: ``"ren"`` (the only published split).
    layout: ``"auto"``, ``"png"`` or ``"npz"`` (see the module docstring).
    image_size: side of the images (resized with LANCZOS when not 84).
    examples_per_class: keep the first E images of each class and stack them into
      ``[C, E, S, S, 3]``; all of them, as a tuple of per-class arrays, by default.
    npz_bgr: the ``.npz`` holds BGR (as Ren's ``decompress`` writes it).
    sha256: optional ``{file name relative to the folder: hex digest}`` to check first.
    num_threads: PNG decoding threads; one per CPU by default.

  Returns:
    ``Splits``; ``class_names`` WordNet ids (``"<split>/<c>"`` when the labels file has
    no ``label_specific_str``), ``superclasses`` category names ('' when absent).

  Raises:
    FileNotFoundError: a folder or file is missing (the message names it).
    ValueError: a file is malformed, or a split's class count is not Ren's (named).
  """
  if split != "ren":
    raise ValueError(f"Unknown tiered-ImageNet split {split!r}; use 'ren'.")
  if layout not in ("auto", "png", "npz"):
    raise ValueError(f"Unknown tiered-ImageNet layout {layout!r}; use 'auto', 'png' or "
                     "'npz'.")
  if examples_per_class is not None and examples_per_class < 1:
    raise ValueError(f"examples_per_class must be >= 1; got {examples_per_class}.")
  root = tiered_imagenet_dir(data_dir)
  fewshot_images.require([root], dataset=_DATASET, layout=_LAYOUT)
  fewshot_images.check_sha256(root, sha256, dataset=_DATASET)
  if layout == "auto":
    layout = "png" if (root / "train_images_png.pkl").exists() else "npz"
  splits = [_read_split(root, name, layout, image_size, examples_per_class, npz_bgr,
                        num_threads) for name in fewshot_images.SPLIT_NAMES]
  return fewshot_images.check_disjoint(fewshot_images.Splits(*splits), dataset=_DATASET)


def tiered_imagenet_dir(data_dir=None) -> pathlib.Path:
  """``<data_dir>/tiered_imagenet``, or ``data_dir`` itself if it holds the files."""
  return fewshot_images.data_root(data_dir, "tiered_imagenet", ["train_labels.pkl"],
                                  dataset=_DATASET, fix=_FIX)


def _read_split(root, split, layout, image_size, examples_per_class, npz_bgr,
                num_threads) -> fewshot_images.Split:
  labels_path = root / f"{split}_labels.pkl"
  images_path = root / (f"{split}_images_png.pkl" if layout == "png"
                        else f"{split}_images.npz")
  fewshot_images.require([labels_path, images_path], dataset=_DATASET, layout=_LAYOUT)
  rows_C, names, superclasses, num_images = _read_labels(labels_path, split)
  if examples_per_class is not None:
    short = int(np.argmin([len(r) for r in rows_C]))
    if len(rows_C[short]) < examples_per_class:
      raise ValueError(f"{_DATASET}: class {names[short]} of {labels_path} has "
                       f"{len(rows_C[short])} images; examples_per_class="
                       f"{examples_per_class} needs that many.")
    rows_C = [r[:examples_per_class] for r in rows_C]
  rows = np.concatenate(rows_C)
  if layout == "png":
    blobs = fewshot_images.read_pickle(images_path, dataset=_DATASET, layout=_LAYOUT)
    if not isinstance(blobs, (list, tuple)) or len(blobs) != num_images:
      raise ValueError(f"{_DATASET}: {images_path} holds {_describe(blobs)}; expected a "
                       f"list of {num_images} PNG-encoded images, one per label in "
                       f"{labels_path}.")
    images = fewshot_images.decode_images(
        [blobs[i] for i in rows], image_size, num_threads=num_threads,
        describe=lambda i: f"image {rows[i]} of {images_path}")
  else:
    images = _read_npz(images_path, labels_path, num_images, rows, npz_bgr)
    images = fewshot_images.resize_images(images, image_size)
  if examples_per_class is not None:
    images = images.reshape(len(rows_C), examples_per_class, *images.shape[1:])
  else:
    images = tuple(np.split(images, np.cumsum([len(r) for r in rows_C])[:-1]))
  return fewshot_images.Split(images, np.array(names), np.array(superclasses))


def _read_labels(path, split):
  """Rows of each class (file order), class names, category names, image count."""
  tree = fewshot_images.read_pickle(path, dataset=_DATASET, layout=_LAYOUT)
  specific = fewshot_images.field(tree, ["label_specific", "labels"], path,
                                  dataset=_DATASET, layout=_LAYOUT)
  specific = np.asarray(specific)
  if specific.ndim != 1 or not np.issubdtype(specific.dtype, np.integer):
    raise ValueError(f"{_DATASET}: {path}: label_specific must be a 1-D integer array; "
                     f"got {specific.dtype} {specific.shape}.")
  names = tree.get("label_specific_str")
  num_classes = len(names) if names is not None else int(specific.max(initial=-1)) + 1
  if num_classes != NUM_CLASSES[split]:
    raise ValueError(f"{_DATASET}: {path} has {num_classes} classes; Ren et al.'s {split} "
                     f"split has {NUM_CLASSES[split]}.")
  counts = np.bincount(specific.clip(0), minlength=num_classes)
  if specific.min(initial=0) < 0 or len(counts) > num_classes or (counts == 0).any():
    raise ValueError(f"{_DATASET}: {path}: label_specific must use every class "
                     f"0..{num_classes - 1} and no other value.")
  names = ([_text(n) for n in names] if names is not None
           else [f"{split}/{c}" for c in range(num_classes)])
  order = np.argsort(specific, kind="stable")
  rows_C = np.split(order, np.cumsum(counts)[:-1])
  return rows_C, names, _categories(tree, path, split, rows_C), len(specific)


def _categories(tree, path, split, rows_C):
  """The category name of each class ('' without ``label_general``)."""
  if "label_general" not in tree:
    return [""] * len(rows_C)
  general = np.asarray(tree["label_general"])
  names = tree.get("label_general_str")
  try:
    per_class = [np.unique(general[r]) for r in rows_C]
  except IndexError as error:
    raise ValueError(f"{_DATASET}: {path}: label_general must have one entry per "
                     "image.") from error
  if any(len(u) != 1 for u in per_class):
    raise ValueError(f"{_DATASET}: {path}: a class spans several label_general values.")
  used = sorted({int(u[0]) for u in per_class})
  if len(used) != NUM_CATEGORIES[split]:
    raise ValueError(f"{_DATASET}: {path} has {len(used)} categories; Ren et al.'s "
                     f"{split} split has {NUM_CATEGORIES[split]}.")
  if names is None:
    return [f"{split}/category{int(u[0])}" for u in per_class]
  return [_text(names[int(u[0])]) for u in per_class]


def _read_npz(path, labels_path, num_images, rows, bgr):
  try:
    with np.load(path, allow_pickle=False) as npz:
      images = npz["images"]
  except Exception as error:  # noqa: BLE001  (any parse failure is named)
    raise ValueError(f"{_DATASET}: cannot read 'images' from {path}: {error!r}. "
                     f"Expected {_LAYOUT}.") from error
  if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3
      or len(images) != num_images):
    raise ValueError(f"{_DATASET}: {path} holds {images.dtype} {images.shape}; expected "
                     f"uint8 [{num_images}, 84, 84, 3], one image per label in "
                     f"{labels_path}.")
  if not np.array_equal(rows, np.arange(len(images))):
    images = images[rows]  # A copy; files in class order (Ren's) are used as they are.
  if bgr:
    for i in range(0, len(images), 4096):  # In place, a chunk at a time.
      images[i:i + 4096] = images[i:i + 4096, ..., ::-1]
  return images


def _text(name) -> str:
  return name.decode() if isinstance(name, bytes) else str(name)


def _describe(x) -> str:
  return f"a {type(x).__name__} of {len(x)}" if hasattr(x, "__len__") else type(x).__name__
