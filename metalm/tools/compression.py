"""Quantization (post-training, activation calibration, QAT) and magnitude pruning.

Quantization is symmetric: ``q = clip(round(x / scale), -qmax, qmax)`` with
``qmax = 2 ** (bits - 1) - 1``. Weights are quantized per output channel (the last axis of
Flax kernels, ``[..., in, out]``); leaves with fewer than two axes (biases, norm scales)
stay in float32. Pruning touches the same leaves.
"""

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np


class QuantizedTensor(NamedTuple):
  """An integer tensor and its per-output-channel scale (``x ~ values * scale``)."""

  values: jax.Array  # int8, the kernel's shape.
  scale: jax.Array  # float32, [out].


def _is_kernel(leaf) -> bool:
  return jnp.ndim(leaf) >= 2


def _is_quantized(leaf) -> bool:
  return isinstance(leaf, QuantizedTensor)


def qmax(bits: int) -> int:
  return 2 ** (bits - 1) - 1


def _expand(scale: jax.Array, ndim: int) -> jax.Array:
  """A per-channel ``[out]`` scale shaped to broadcast over an ``ndim`` kernel."""
  return scale.reshape((1,) * (ndim - scale.ndim) + scale.shape)


def channel_scale(w: jax.Array, bits: int = 8) -> jax.Array:
  """Per-output-channel scale ``max|w| / qmax`` (1 for all-zero channels)."""
  amax = jnp.max(jnp.abs(w), axis=tuple(range(w.ndim - 1)))
  return jnp.where(amax > 0, amax / qmax(bits), 1.0).astype(jnp.float32)


def quantize_params(params, bits: int = 8):
  """Post-training weight quantization: kernels become ``QuantizedTensor`` leaves."""
  if bits > 8:
    raise ValueError(f"quantize_params stores int8; got bits={bits}.")

  def quantize(w):
    if not _is_kernel(w):
      return w
    scale = channel_scale(w, bits)
    q = qmax(bits)
    values = jnp.clip(jnp.round(w / _expand(scale, w.ndim)), -q, q).astype(jnp.int8)
    return QuantizedTensor(values, scale)

  return jax.tree.map(quantize, params)


def dequantize_params(qparams):
  """Float32 parameters back from ``quantize_params``'s tree."""

  def dequantize(leaf):
    if _is_quantized(leaf):
      return leaf.values.astype(jnp.float32) * _expand(leaf.scale, leaf.values.ndim)
    return leaf

  return jax.tree.map(dequantize, qparams, is_leaf=_is_quantized)


def size_bytes(tree) -> int:
  """Bytes of a (possibly quantized) parameter tree as stored: int8 values plus scales."""
  return int(sum(np.dtype(leaf.dtype).itemsize * np.size(leaf) for leaf in jax.tree.leaves(tree)))


def float32_size_bytes(params) -> int:
  """Bytes of ``params`` stored in float32."""
  return int(sum(4 * np.size(leaf) for leaf in jax.tree.leaves(params)))


def calibrate_scale(
    batches: Sequence[jax.Array],
    *,
    method: str = "minmax",
    percentile: float = 99.99,
    bits: int = 8,
) -> jax.Array:
  """Per-tensor activation scale from calibration batches.

  Jacob et al., 2018, arXiv:1712.05877 (min-max); Wu et al., 2020, arXiv:2004.09602
  (percentile).

  Args:
    batches: activations collected on a few calibration batches.
    method: ``"minmax"`` (largest ``|x|`` seen) or ``"percentile"`` (that percentile of
      ``|x|`` over all batches, robust to outliers).
    percentile: in [0, 100], for ``method="percentile"``.
    bits: bit width of the quantized activations.
  """
  magnitudes = jnp.concatenate([jnp.abs(b).reshape(-1) for b in batches])
  if method == "minmax":
    amax = jnp.max(magnitudes)
  elif method == "percentile":
    amax = jnp.percentile(magnitudes, percentile)
  else:
    raise ValueError(f"Unknown calibration method {method!r}; use 'minmax' or 'percentile'.")
  return jnp.where(amax > 0, amax / qmax(bits), 1.0).astype(jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _ste_quant(x, scale, bits):
  q = qmax(bits)
  return jnp.clip(jnp.round(x / scale), -q, q) * scale


def _ste_fwd(x, scale, bits):
  return _ste_quant(x, scale, bits), (x, scale)


def _ste_bwd(bits, residuals, g):
  x, scale = residuals
  inside = jnp.abs(x) <= qmax(bits) * scale
  # The scale is not learned here, so it gets a zero cotangent.
  return jnp.where(inside, g, jnp.zeros_like(g)), jnp.zeros_like(scale)


_ste_quant.defvjp(_ste_fwd, _ste_bwd)


def fake_quant(x: jax.Array, scale: jax.Array, bits: int = 8) -> jax.Array:
  """Quantize-dequantize with a straight-through gradient.

  Bengio, Leonard & Courville, 2013, arXiv:1308.3432 (straight-through estimator).

  Forward: ``clip(round(x / scale), -qmax, qmax) * scale``. Backward: the identity where
  ``|x| <= qmax * scale`` (inside the clipping range), zero outside; ``scale`` gets no
  gradient. ``scale`` is a scalar or a per-channel vector over the last axis of ``x``.
  """
  scale = jnp.asarray(scale, x.dtype)
  return _ste_quant(x, _expand(scale, x.ndim), bits)


def fake_quant_params(params, bits: int = 8):
  """Quantization-aware training: kernels fake-quantized per channel (STE gradients).

  Jacob et al., 2018, arXiv:1712.05877.
  """

  def quant(w):
    if not _is_kernel(w):
      return w
    return fake_quant(w, jax.lax.stop_gradient(channel_scale(w, bits)), bits)

  return jax.tree.map(quant, params)


def magnitude_masks(params, sparsity, *, scope: str = "global"):
  """Boolean masks keeping the largest-magnitude kernel weights.

  Zhu & Gupta, 2017, arXiv:1710.01878.

  Exactly ``round(sparsity * n)`` weights are pruned, ties broken by position (a stable
  sort), so the sparsity is exact even with repeated magnitudes.

  Args:
    params: parameter pytree; leaves with fewer than two axes are never pruned.
    sparsity: fraction of prunable weights to remove, in [0, 1] (may be traced).
    scope: ``"global"`` (one threshold over all kernels) or ``"layer"`` (each kernel
      pruned to ``sparsity`` on its own).
  """
  if scope not in ("global", "layer"):
    raise ValueError(f"Unknown pruning scope {scope!r}; use 'global' or 'layer'.")
  leaves, treedef = jax.tree.flatten(params)
  kernels = [i for i, leaf in enumerate(leaves) if _is_kernel(leaf)]
  masks = [jnp.ones(jnp.shape(leaf), bool) for leaf in leaves]

  def keep(magnitudes_N):
    n = magnitudes_N.shape[0]
    order_N = jnp.argsort(magnitudes_N, stable=True)
    rank_N = jnp.zeros((n,), jnp.int32).at[order_N].set(jnp.arange(n, dtype=jnp.int32))
    return rank_N >= jnp.round(sparsity * n).astype(jnp.int32)

  if scope == "layer":
    for i in kernels:
      masks[i] = keep(jnp.abs(leaves[i]).reshape(-1)).reshape(leaves[i].shape)
  elif kernels:
    flat = jnp.concatenate([jnp.abs(leaves[i]).reshape(-1) for i in kernels])
    kept = keep(flat)
    start = 0
    for i in kernels:
      size = leaves[i].size
      masks[i] = kept[start:start + size].reshape(leaves[i].shape)
      start += size
  return jax.tree.unflatten(treedef, masks)


def apply_mask(params, masks):
  """Zeroes the pruned weights (``masks`` from ``magnitude_masks``)."""
  return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, masks)


def sparsity_of(masks) -> jax.Array:
  """Fraction of pruned entries over the kernels (leaves with two or more axes)."""
  kernel_masks = [m for m in jax.tree.leaves(masks) if _is_kernel(m)]
  pruned = sum(jnp.sum(~m) for m in kernel_masks)
  return pruned / sum(m.size for m in kernel_masks)


def polynomial_sparsity(
    step,
    *,
    final_sparsity: float,
    begin_step: int,
    end_step: int,
    initial_sparsity: float = 0.0,
    power: float = 3.0,
):
  """Gradual pruning schedule ``s_f + (s_i - s_f) * (1 - progress) ** power``.

  Zhu & Gupta, 2017, arXiv:1710.01878.

  Equals ``initial_sparsity`` up to ``begin_step`` and ``final_sparsity`` from
  ``end_step`` on.
  """
  progress = jnp.clip((step - begin_step) / (end_step - begin_step), 0.0, 1.0)
  return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** power
