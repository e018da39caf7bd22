"""Convolution and pooling written so per-task weights batch as matrix products.

Meta-learners ``vmap`` the model over tasks, each with its own weights. XLA lowers a
convolution with a batched kernel to a grouped convolution, which its CPU backend runs
far below the machine's matrix-multiply speed. Written as im2col (shifted slices
stacked into patches) followed by ``dot_general``, the same layer becomes a batched
GEMM under ``vmap``, forward and backward. Accelerators keep XLA's native convolution.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

CONV_IMPLS = ("auto", "xla", "im2col")


def resolve_impl(impl: str) -> str:
  """``"auto"`` becomes ``"im2col"`` on CPU and ``"xla"`` on accelerators."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"Unknown convolution impl {impl!r}; choose one of {CONV_IMPLS}.")
  if impl == "auto":
    return "im2col" if jax.default_backend() == "cpu" else "xla"
  return impl


def im2col(x_NxHxWxC: jax.Array, kernel_size: tuple[int, int]) -> jax.Array:
  """Patches of a stride-1 'SAME' convolution: ``[N, H, W, kh * kw * C]``.

  The patch axis is ordered (kh, kw, C), matching a ``[kh, kw, C, F]`` kernel reshaped
  to ``[kh * kw * C, F]``.
  """
  kh, kw = kernel_size
  _, h, w, _ = x_NxHxWxC.shape
  top, left = (kh - 1) // 2, (kw - 1) // 2
  padded = jnp.pad(x_NxHxWxC, ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)))
  shifted = [padded[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)]
  return jnp.concatenate(shifted, axis=-1)


class Conv(nn.Module):
  """Stride-1 'SAME' 2-D convolution with ``nn.Conv``'s parameters and initializers.

  Attributes:
    features: output channels.
    kernel_size: spatial size of the kernel.
    impl: ``"xla"`` (``lax.conv``), ``"im2col"`` (patches @ kernel) or ``"auto"``
      (im2col on CPU, XLA on accelerators). All give the same values to rounding.
  """

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  impl: str = "auto"
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    in_features = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (*self.kernel_size, in_features, self.features), self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
    if resolve_impl(self.impl) == "xla":
      y = jax.lax.conv_general_dilated(
          x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
          preferred_element_type=jnp.promote_types(x.dtype, jnp.float32))
    else:
      patches = im2col(x, self.kernel_size)
      y = jnp.dot(patches, kernel.reshape(-1, self.features),
                  preferred_element_type=jnp.promote_types(x.dtype, jnp.float32))
    # Low-precision inputs still accumulate in float32 (mixed precision).
    y = y.astype(x.dtype) if jnp.finfo(x.dtype).bits < 32 else y
    return y + bias.reshape((1,) * (y.ndim - 1) + (-1,))


def max_pool_2x2(x_NxHxWxC: jax.Array) -> jax.Array:
  """2x2 max-pool with stride 2, 'VALID' (odd edges dropped), by reshape and max.

  Equals ``nn.max_pool(x, (2, 2), strides=(2, 2))`` but lowers to a reduction that
  batches cheaply under ``vmap``.
  """
  n, h, w, c = x_NxHxWxC.shape
  x = x_NxHxWxC[:, : h // 2 * 2, : w // 2 * 2, :]
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
