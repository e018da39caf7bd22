"""Task losses of the multitask benchmarks, ``loss(out, y) -> (scalar, metrics)``.

Targets mark what does not count: class id -1 (padding tokens, unlabelled pixels),
depth 0 and normal 0 (missing), as in MTAN's data (Liu et al. 2019, arXiv:1803.10704).
"""

import jax.numpy as jnp
import optax


def masked_cross_entropy(logits, labels):
  """Softmax cross-entropy over positions with ``labels >= 0`` (tokens or pixels), and
  their accuracy. ``logits [..., C]``, ``labels [...]``."""
  valid = labels >= 0
  safe = jnp.where(valid, labels, 0)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, safe)
  count = jnp.maximum(valid.sum(), 1).astype(logits.dtype)
  hits = (jnp.argmax(logits, -1) == safe) & valid
  return (jnp.where(valid, losses, 0.0).sum() / count,
          {"accuracy": hits.sum().astype(logits.dtype) / count})


def depth_l1(pred, target):
  """Mean absolute error over pixels whose depth is non-zero (MTAN's depth loss)."""
  valid = target.sum(axis=-1, keepdims=True) != 0
  count = jnp.maximum(jnp.broadcast_to(valid, pred.shape).sum(), 1).astype(pred.dtype)
  loss = jnp.where(valid, jnp.abs(pred - target), 0.0).sum() / count
  return loss, {"abs_err": loss}


def normal_cosine(pred, target):
  """One minus the mean cosine between normals over pixels with a true normal (MTAN's
  normal loss); ``pred`` is scaled to unit length."""
  valid = target.sum(axis=-1) != 0
  unit = pred / jnp.maximum(jnp.linalg.norm(pred, axis=-1, keepdims=True), 1e-12)
  count = jnp.maximum(valid.sum(), 1).astype(pred.dtype)
  cosine = jnp.where(valid, (unit * target).sum(axis=-1), 0.0).sum() / count
  return 1.0 - cosine, {"cosine": cosine}
