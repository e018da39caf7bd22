"""Cityscapes with two tasks at 128x256: 7-class segmentation and depth.

Liu et al. 2019's preprocessing of Cityscapes (Cordts et al. 2016), the two-task
benchmark of MTAN, CAGrad, Nash-MTL and FAMO: 2975 training and 500 validation images
(the validation split is those papers' test set). Under
``$METALM_DATA_DIR/cityscapes`` (or ``data_dir`` itself)::

  {train,val}/image/<i>.npy    float [128, 256, 3]  RGB in [0, 1]
  {train,val}/label_7/<i>.npy  [128, 256]           class ids 0..6, -1 ignored
  {train,val}/depth/<i>.npy    float [128, 256, 1]  depth from disparity, 0 where missing

for ``i = 0 .. n-1``, as the MTAN repository's download (lorenmt/mtan, "CityScapes
(pre-processed)") unpacks. Copies that also hold ``label_19/`` (the 19 evaluation
classes) load it with ``num_classes=19``. Examples come channels-last, labels as int32.
Reference: Liu, Johns & Davison 2019, arXiv:1803.10704.
"""

import pathlib
from typing import Mapping

from metalm.data import dense_npy, fewshot_images

TASKS = ("segmentation", "depth")
NUM_CLASSES = 7
IMAGE_SHAPE = (128, 256)
NUM_EXAMPLES = {"train": 2975, "val": 500}
# Single-task baselines on the val split (CAGrad, Liu et al. 2021, arXiv:2110.14048),
# the reference of Nash-MTL's and FAMO's Delta_m.
STL_BASELINE = {"miou": 0.7401, "pixel_acc": 0.9316, "abs_err": 0.0125, "rel_err": 27.77}
_DATASET = "Cityscapes"


def _layout(num_classes: int = NUM_CLASSES) -> str:
  label = f"label_{num_classes}"
  return (f"cityscapes/{{train,val}}/{{image,{label},depth}}/<i>.npy for i = 0..n-1 (2975 "
          f"train, 500 val) with image float [128, 256, 3], {label} [128, 256] (0.."
          f"{num_classes - 1}, -1 ignored) and depth [128, 256, 1]: Liu et al.'s preprocessed "
          "Cityscapes from the MTAN repository (github.com/lorenmt/mtan)")


def load(data_dir=None, split: str = "train", *, num_classes: int = NUM_CLASSES,
         image_shape: tuple[int, int] = IMAGE_SHAPE, check_count: bool = True,
         sha256: Mapping[str, str] | None = None) -> dense_npy.DenseSplit:
  """One split of Cityscapes, read lazily.

  Args:
    data_dir: the datasets folder holding ``cityscapes/`` (or that folder itself);
      ``$METALM_DATA_DIR`` by default.
    split: ``"train"`` or ``"val"``.
    num_classes: reads labels from ``label_<num_classes>/``; 7 in the benchmark.
    image_shape: ``(H, W)`` every file must have; 128x256 is Liu et al.'s.
    check_count: require the published 2975 / 500 examples.
    sha256: optional ``{file name relative to cityscapes/: hex digest}`` to check first.

  Returns:
    A ``DenseSplit`` with tasks ``segmentation`` (int32 [H, W]) and ``depth`` (float32
    [H, W, 1]) beside ``image`` (float32 [H, W, 3]).

  Raises:
    FileNotFoundError: a folder or file is missing (the message names it).
    ValueError: a file has another shape or is not a ``.npy`` array (named).
  """
  if split not in NUM_EXAMPLES:
    raise ValueError(f"Unknown Cityscapes split {split!r}; use 'train' or 'val'.")
  root = cityscapes_dir(data_dir)
  layout = _layout(num_classes)
  fewshot_images.require([root], dataset=_DATASET, layout=layout)
  fewshot_images.check_sha256(root, sha256, dataset=_DATASET)
  h, w = image_shape
  fields = [dense_npy.Field("image", "image", (h, w, 3), "image"),
            dense_npy.Field("segmentation", f"label_{num_classes}", (h, w), "label"),
            dense_npy.Field("depth", "depth", (h, w, 1), "depth")]
  return dense_npy.open_split(root / split, fields, num_classes=num_classes,
                             size=NUM_EXAMPLES[split] if check_count else None,
                             dataset=_DATASET, layout=layout)


def cityscapes_dir(data_dir=None) -> pathlib.Path:
  """``<data_dir>/cityscapes``, or ``data_dir`` itself if it holds the split folders."""
  return fewshot_images.data_root(data_dir, "cityscapes", ["train/label_7", "val/label_7"],
                                  dataset=_DATASET,
                                  fix=("Set METALM_DATA_DIR to the folder that holds "
                                       f"cityscapes/ (or pass data_dir=) with {_layout()}."))
