"""NYUv2 with three tasks: 13-class segmentation, depth and surface normals.

Liu et al. 2019's preprocessing of NYUv2 (Silberman et al. 2012) at 288x384, the data
of MTAN, CAGrad, Nash-MTL, FAMO and LibMTL: 795 training and 654 validation images
(the validation split is the test set of those papers). Under
``$METALM_DATA_DIR/nyuv2`` (or ``data_dir`` itself)::

  {train,val}/image/<i>.npy   float [288, 384, 3]  RGB in [0, 1]
  {train,val}/label/<i>.npy   [288, 384]           class ids 0..12, -1 ignored
  {train,val}/depth/<i>.npy   float [288, 384, 1]  metres, 0 where missing
  {train,val}/normal/<i>.npy  float [288, 384, 3]  unit normals, 0 where missing

for ``i = 0 .. n-1``, as the MTAN repository's download (lorenmt/mtan, "NYUv2
(pre-processed)") unpacks. Examples come channels-last, labels as int32.
Reference: Liu, Johns & Davison 2019, arXiv:1803.10704.
"""

import pathlib
from typing import Mapping

from metalm.data import dense_npy, fewshot_images

TASKS = ("segmentation", "depth", "normal")
NUM_CLASSES = 13
IMAGE_SHAPE = (288, 384)
NUM_EXAMPLES = {"train": 795, "val": 654}
# Single-task baselines on the val split (CAGrad, Liu et al. 2021, arXiv:2110.14048),
# the reference of Nash-MTL's and FAMO's Delta_m.
STL_BASELINE = {"miou": 0.3830, "pixel_acc": 0.6376, "abs_err": 0.6754, "rel_err": 0.2780,
                "angle_mean": 25.01, "angle_median": 19.21, "within_11_25": 0.3014,
                "within_22_5": 0.5720, "within_30": 0.6915}
_DATASET = "NYUv2"
_LAYOUT = ("nyuv2/{train,val}/{image,label,depth,normal}/<i>.npy for i = 0..n-1 (795 train, "
           "654 val) with image float [288, 384, 3], label [288, 384] (0..12, -1 ignored), "
           "depth [288, 384, 1] and normal [288, 384, 3]: Liu et al.'s preprocessed NYUv2 "
           "from the MTAN repository (github.com/lorenmt/mtan)")
_FIX = ("Set METALM_DATA_DIR to the folder that holds nyuv2/ (or pass data_dir=) with "
        f"{_LAYOUT}.")


def load(data_dir=None, split: str = "train", *, image_shape: tuple[int, int] = IMAGE_SHAPE,
         check_count: bool = True,
         sha256: Mapping[str, str] | None = None) -> dense_npy.DenseSplit:
  """One split of NYUv2, read lazily.

  Args:
    data_dir: the datasets folder holding ``nyuv2/`` (or that folder itself);
      ``$METALM_DATA_DIR`` by default.
    split: ``"train"`` or ``"val"``.
    image_shape: ``(H, W)`` every file must have; 288x384 is Liu et al.'s.
    check_count: require the published 795 / 654 examples.
    sha256: optional ``{file name relative to nyuv2/: hex digest}`` to check first.

  Returns:
    A ``DenseSplit`` with tasks ``segmentation`` (int32 [H, W]), ``depth`` (float32
    [H, W, 1]) and ``normal`` (float32 [H, W, 3]) beside ``image`` (float32 [H, W, 3]).

  Raises:
    FileNotFoundError: a folder or file is missing (the message names it).
    ValueError: a file has another shape or is not a ``.npy`` array (named).
  """
  if split not in NUM_EXAMPLES:
    raise ValueError(f"Unknown NYUv2 split {split!r}; use 'train' or 'val'.")
  root = nyuv2_dir(data_dir)
  fewshot_images.require([root], dataset=_DATASET, layout=_LAYOUT)
  fewshot_images.check_sha256(root, sha256, dataset=_DATASET)
  h, w = image_shape
  fields = [dense_npy.Field("image", "image", (h, w, 3), "image"),
            dense_npy.Field("segmentation", "label", (h, w), "label"),
            dense_npy.Field("depth", "depth", (h, w, 1), "depth"),
            dense_npy.Field("normal", "normal", (h, w, 3), "normal")]
  return dense_npy.open_split(root / split, fields, num_classes=NUM_CLASSES,
                             size=NUM_EXAMPLES[split] if check_count else None,
                             dataset=_DATASET, layout=_LAYOUT)


def nyuv2_dir(data_dir=None) -> pathlib.Path:
  """``<data_dir>/nyuv2``, or ``data_dir`` itself if it holds the split folders."""
  return fewshot_images.data_root(data_dir, "nyuv2", ["train/normal", "val/normal"],
                                  dataset=_DATASET, fix=_FIX)
