"""NYUv2 (segmentation, depth, normals) and Cityscapes (segmentation, depth).

Liu et al.'s preprocessed data (MTAN, arXiv:1803.10704) as ``metalm.data.nyuv2`` /
``cityscapes`` read it, a small encoder-decoder (``architectures.dense``) in place of
SegNet, MTAN's losses, and the metrics of ``metalm.eval.dense`` on the val split.
"""

import jax
import jax.numpy as jnp
import numpy as np

from experiments.multitask.benchmarks import common
from metalm.data import cityscapes, multitask, nyuv2
from metalm.eval import dense as dense_eval
from metalm.mtl import architectures, losses
from metalm.mtl.architectures import dense

DATASETS = {"nyuv2": nyuv2, "cityscapes": cityscapes}
METRICS = {"segmentation": ("miou", "pixel_acc"), "depth": ("abs_err", "rel_err"),
           "normal": ("angle_mean", "angle_median", "within_11_25", "within_22_5",
                      "within_30")}
LOSSES = {"segmentation": losses.masked_cross_entropy, "depth": losses.depth_l1,
          "normal": losses.normal_cosine}


def baselines(dataset: str) -> dict:
  """The single-task baselines of ``DATASETS[dataset].STL_BASELINE`` by task."""
  flat = DATASETS[dataset].STL_BASELINE
  tasks = DATASETS[dataset].TASKS
  return {t: {m: flat[m] for m in METRICS[t]} for t in tasks}


def setup(config) -> common.Benchmark:
  """Config ``data``: ``dataset``, ``data_dir``, ``image_shape``, ``check_count``,
  ``augment``; ``model``: ``features``."""
  data = config.data
  module = DATASETS[data.dataset]
  splits = {s: module.load(data.data_dir or None, s, image_shape=tuple(data.image_shape),
                           check_count=data.check_count)
            for s in ("train", config.eval.split)}
  train, test = splits["train"], splits[config.eval.split]
  heads = {"segmentation": dense.PixelHead(train.num_classes), "depth": dense.PixelHead(1),
           "normal": dense.PixelHead(3, unit=True)}
  heads = {t: heads[t] for t in train.tasks}
  model = architectures.build("hard_sharing", dense.EncoderDecoder(tuple(config.model.features)),
                              heads, (1, *data.image_shape, 3))
  predict = common.predict_fn(model)

  @jax.jit
  def sums(outputs, y):
    out = {}
    if "segmentation" in y:
      out["confusion"] = dense_eval.confusion_matrix(
          outputs["segmentation"], y["segmentation"], train.num_classes)
    if "depth" in y:
      out["depth"] = dense_eval.depth_error_sums(outputs["depth"], y["depth"])
    if "normal" in y:
      angles, valid = dense_eval.normal_angles(outputs["normal"], y["normal"])
      out["angle_hist"] = jnp.histogram(angles, bins=18_000, range=(0.0, 180.0),
                                        weights=valid.astype(angles.dtype))[0]
    return out

  def evaluate(params, model_state):
    total = common.accumulate(predict, params, model_state,
                              test.iterate(config.eval.batch_size, drop_remainder=False), sums)
    scores = {}
    if "confusion" in total:
      scores["segmentation"] = dense_eval.segmentation_metrics(total["confusion"])
    if "depth" in total:
      scores["depth"] = dense_eval.depth_metrics(total["depth"])
    if "angle_hist" in total:
      scores["normal"] = normal_scores(total["angle_hist"])
    return common.to_python(scores)

  return common.Benchmark(
      model=model, loss_fns={t: LOSSES[t] for t in train.tasks},
      batcher=multitask.SplitBatcher(train, config.seed, augment=data.augment),
      evaluate=evaluate,
      higher_is_better={t: {m: dense_eval.HIGHER_IS_BETTER[m] for m in METRICS[t]}
                        for t in train.tasks})


def normal_scores(hist: np.ndarray) -> dict:
  """Normal metrics from a histogram of angles in 0.01-degree bins (exact to a bin).

  Summing histograms over batches keeps memory flat where concatenating every valid
  angle of NYUv2's val split (about 70 million) would not.
  """
  width = 180.0 / len(hist)
  centers = (np.arange(len(hist)) + 0.5) * width
  count = hist.sum()
  cumulative = np.cumsum(hist)
  out = {"angle_mean": float((hist * centers).sum() / count),
         "angle_median": float(centers[np.searchsorted(cumulative, count / 2)])}
  for name, degrees in dense_eval.THRESHOLDS.items():
    out[name] = float(hist[:int(round(degrees / width))].sum() / count)
  return out
