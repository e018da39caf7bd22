"""Dense-prediction metrics of the multitask literature: segmentation, depth, normals.

As MTAN and its successors (CAGrad, Nash-MTL, FAMO, LibMTL) compute them on NYUv2 and
Cityscapes: mIoU and pixel accuracy from a confusion matrix, ignoring label -1; absolute
and relative depth error over the pixels whose target is non-zero; the angle between
predicted and true normals over the pixels whose normal is non-zero (the sum of its
components, as MTAN tests), summarized by its mean, median and the fractions under
11.25, 22.5 and 30 degrees. Confusion matrices and depth sums add over batches, so a
split's metrics are exact; the normal median needs all of a split's angles (concatenate
``angles[valid]`` on the host, as LibMTL does; MTAN averaged per-batch medians).
Everything is jnp and jit-compatible.
Reference: Liu, Johns & Davison 2019, arXiv:1803.10704.
"""

import jax
import jax.numpy as jnp

# For Delta_m: whether a larger value of each metric is better.
HIGHER_IS_BETTER = {"miou": True, "pixel_acc": True, "abs_err": False, "rel_err": False,
                    "angle_mean": False, "angle_median": False, "within_11_25": True,
                    "within_22_5": True, "within_30": True}
THRESHOLDS = {"within_11_25": 11.25, "within_22_5": 22.5, "within_30": 30.0}


def confusion_matrix(pred: jax.Array, label: jax.Array, num_classes: int) -> jax.Array:
  """Pixel counts by true class (rows) and predicted class (columns).

  Args:
    pred: predicted class ids ``[B, H, W]``, or logits ``[B, H, W, C]`` (argmax taken).
    label: class ids ``[B, H, W]``; pixels outside ``[0, C)`` (-1) are ignored.
    num_classes: C.

  Returns:
    int32 ``[C, C]``; sum the matrices of a split's batches.
  """
  if pred.ndim == label.ndim + 1:
    pred = jnp.argmax(pred, axis=-1)
  label = label.astype(jnp.int32)
  valid = (label >= 0) & (label < num_classes)
  pred = jnp.clip(pred.astype(jnp.int32), 0, num_classes - 1)
  index = jnp.where(valid, label * num_classes + pred, 0)
  counts = jnp.bincount(index.ravel(), weights=valid.ravel().astype(jnp.int32),
                        length=num_classes * num_classes)
  return counts.reshape(num_classes, num_classes)


def segmentation_metrics(confusion_CxC: jax.Array) -> dict[str, jax.Array]:
  """``{"miou", "pixel_acc"}`` of a confusion matrix.

  The mean IoU skips classes absent from both labels and predictions (their IoU is 0/0;
  MTAN's ``ConfMatrix`` would return NaN); on a full split every class is present.
  """
  h = confusion_CxC.astype(jnp.float32)
  hits = jnp.diagonal(h)
  union = h.sum(axis=0) + h.sum(axis=1) - hits
  iou = jnp.where(union > 0, hits / jnp.where(union > 0, union, 1.0), jnp.nan)
  return {"miou": jnp.nanmean(iou), "pixel_acc": hits.sum() / h.sum()}


def depth_error_sums(pred: jax.Array, target: jax.Array) -> dict[str, jax.Array]:
  """Summed absolute and relative errors over valid pixels, and their count.

  Args:
    pred, target: depth ``[B, H, W, 1]``; a pixel is valid where ``target != 0``.

  Returns:
    ``{"abs_err": sum |p - t|, "rel_err": sum |p - t| / |t|, "count": valid pixels}``;
    add a split's batches, then ``depth_metrics``.
  """
  valid = target.sum(axis=-1, keepdims=True) != 0
  error = jnp.abs(pred - target)
  relative = error / jnp.where(valid, jnp.abs(target), 1.0)
  return {"abs_err": jnp.where(valid, error, 0.0).sum(),
          "rel_err": jnp.where(valid, relative, 0.0).sum(),
          "count": jnp.broadcast_to(valid, error.shape).sum()}


def depth_metrics(sums: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """``{"abs_err", "rel_err"}``: the means over valid pixels of ``depth_error_sums``."""
  count = jnp.asarray(sums["count"]).astype(jnp.result_type(sums["abs_err"]))
  return {"abs_err": sums["abs_err"] / count, "rel_err": sums["rel_err"] / count}


def normal_angles(pred: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Angles in degrees between predicted and true normals, and where they count.

  Args:
    pred: normals ``[B, H, W, 3]``, scaled to unit length here (MTAN's heads output
      unit normals; the rescaling leaves those unchanged).
    target: unit normals ``[B, H, W, 3]``, zero where missing.

  Returns:
    ``(angles [B, H, W], valid [B, H, W] bool)``.
  """
  norm = jnp.linalg.norm(pred, axis=-1, keepdims=True)
  unit = pred / jnp.maximum(norm, 1e-12)
  cosine = jnp.clip((unit * target).sum(axis=-1), -1.0, 1.0)
  return jnp.degrees(jnp.arccos(cosine)), target.sum(axis=-1) != 0


def normal_metrics(angles: jax.Array, valid: jax.Array | None = None) -> dict[str, jax.Array]:
  """Mean, median and threshold fractions of the valid angles (any shape).

  Returns:
    ``{"angle_mean", "angle_median", "within_11_25", "within_22_5", "within_30"}``; the
    median of an even count is the mean of the two middle angles, as ``np.median``.
  """
  angles = angles.ravel()
  valid = jnp.ones(angles.shape, bool) if valid is None else valid.ravel()
  count = valid.sum()
  total = count.astype(angles.dtype)
  ordered = jnp.sort(jnp.where(valid, angles, jnp.inf))
  middle = (ordered[(count - 1) // 2] + ordered[count // 2]) / 2
  out = {"angle_mean": jnp.where(valid, angles, 0.0).sum() / total,
         "angle_median": jnp.where(count > 0, middle, jnp.nan)}
  for name, degrees in THRESHOLDS.items():
    out[name] = (valid & (angles < degrees)).sum().astype(angles.dtype) / total
  return out
