"""Convolution formulations agree: im2col + batched GEMM equals XLA's convolution."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax import test_util

from metalm import models
from metalm.models import layers


def xla_conv(x, kernel):
  return jax.lax.conv_general_dilated(
      x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("shape,kernel_size", [
    ((2, 7, 7, 3), (3, 3)), ((1, 6, 5, 2), (3, 3)), ((2, 5, 5, 1), (5, 5)),
    ((1, 4, 6, 2), (1, 1)), ((1, 5, 5, 2), (2, 2))])
def test_im2col_matches_xla_convolution(shape, kernel_size):
  x = jax.random.normal(jax.random.key(0), shape)
  kernel = jax.random.normal(jax.random.key(1), (*kernel_size, shape[-1], 4))
  patches = layers.im2col(x, kernel_size)
  np.testing.assert_allclose(patches @ kernel.reshape(-1, 4), xla_conv(x, kernel),
                             rtol=1e-5, atol=1e-5)


def test_conv_impls_share_parameters_and_values():
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
  params = nn.Conv(5, (3, 3), padding="SAME").init(jax.random.key(1), x)
  reference = nn.Conv(5, (3, 3), padding="SAME").apply(params, x)
  for impl in ("xla", "im2col", "winograd", "auto"):
    out = layers.Conv(5, (3, 3), impl=impl).apply(params, x)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


def test_per_task_weights_under_vmap_agree(x64):
  """The meta-learning case: vmap over tasks, each with its own kernel."""
  x_T = jax.random.normal(jax.random.key(0), (3, 2, 5, 5, 2))
  kernel_T = jax.random.normal(jax.random.key(1), (3, 3, 3, 2, 4))

  def loss(impl, kernel_T, x_T):
    module = layers.Conv(4, impl=impl)
    out = jax.vmap(lambda k, x: module.apply(
        {"params": {"kernel": k, "bias": jnp.zeros(4)}}, x))(kernel_T, x_T)
    return jnp.sum(jnp.tanh(out) ** 2)

  for argnum in (0, 1):
    grads = [jax.grad(loss, argnums=argnum + 1)(impl, kernel_T, x_T)
             for impl in ("xla", "im2col", "winograd")]
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10)
    np.testing.assert_allclose(grads[0], grads[2], rtol=1e-10)
  for impl in ("im2col", "winograd"):
    test_util.check_grads(lambda k, x, impl=impl: loss(impl, k, x), (kernel_T, x_T),
                          order=2, modes=["rev"])


@pytest.mark.parametrize("shape", [(2, 28, 28, 1), (1, 7, 5, 3), (1, 3, 3, 2), (1, 1, 2, 1)])
def test_winograd_equals_direct_convolution_at_every_size(shape, x64):
  """Even, odd and smaller-than-a-tile inputs (padded to whole tiles, then cropped)."""
  del x64
  x = jax.random.normal(jax.random.key(0), shape, jnp.float64)
  kernel = jax.random.normal(jax.random.key(1), (3, 3, shape[-1], 4), jnp.float64)
  np.testing.assert_allclose(layers.winograd_conv3x3(x, kernel), xla_conv(x, kernel),
                             rtol=1e-12, atol=1e-12)


def test_winograd_needs_a_3x3_kernel():
  x = jnp.ones((1, 6, 6, 2))
  with pytest.raises(ValueError, match="winograd.*3x3 kernel.*im2col"):
    layers.Conv(4, (5, 5), impl="winograd").init(jax.random.key(0), x)


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 7, 5, 2), (1, 3, 3, 1)])
def test_max_pool_matches_flax(shape):
  x = jax.random.normal(jax.random.key(0), shape)
  np.testing.assert_array_equal(layers.max_pool_2x2(x),
                                nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID"))


def test_conv4_impls_agree_with_per_task_weights(x64):
  """Second-order meta-gradients of Conv-4 agree across formulations (float64)."""

  def build(impl):
    return models.build(ml_collections.ConfigDict(dict(
        name="conv4", num_classes=3, filters=4, norm="transductive", conv_impl=impl)),
        (1, 28, 28, 1))

  xla, im2col, winograd = build("xla"), build("im2col"), build("winograd")
  params, state = jax.tree.map(lambda a: a.astype(jnp.float64), xla.init(jax.random.key(0)))
  x_T = jax.random.normal(jax.random.key(1), (2, 3, 28, 28, 1), jnp.float64)

  def adapted_loss(model, params):
    def one_task(x):
      inner = jax.grad(lambda p: jnp.sum(model.apply(p, state, x, train=True)[0] ** 2))
      fast = jax.tree.map(lambda p, g: p - 0.1 * g, params, inner(params))
      return jnp.sum(model.apply(fast, state, x, train=True)[0] ** 2)
    return jnp.sum(jax.vmap(one_task)(x_T))

  grads = [jax.jit(jax.grad(adapted_loss, argnums=1), static_argnums=0)(m, params)
           for m in (xla, im2col, winograd)]
  for other in grads[1:]:
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(other), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_unknown_impl_is_named():
  with pytest.raises(ValueError, match="'gemm'.*choose one of"):
    layers.resolve_impl("gemm")
