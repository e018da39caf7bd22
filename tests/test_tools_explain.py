"""Attributions: completeness of integrated gradients, linear closed forms, SmoothGrad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalm.tools import explain


def _mlp():
  k1, k2 = jax.random.split(jax.random.key(0))
  w1_DxH = jax.random.normal(k1, (5, 8))
  w2_HxC = jax.random.normal(k2, (8, 3))
  return lambda x_BxD: jnp.tanh(x_BxD @ w1_DxH) @ w2_HxC


def _picked(fn, x, target_B):
  return jnp.take_along_axis(fn(x), target_B[:, None], axis=-1)[:, 0]


@pytest.mark.parametrize("method", ["trapezoid", "riemann"])
def test_integrated_gradients_completeness_tightens_with_steps(method):
  fn = _mlp()
  x_BxD = jax.random.normal(jax.random.key(1), (4, 5))
  baseline_BxD = 0.1 * jnp.ones_like(x_BxD)
  target_B = jnp.array([0, 1, 2, 0])
  gap_B = _picked(fn, x_BxD, target_B) - _picked(fn, baseline_BxD, target_B)
  errors = []
  for steps in (4, 64):
    attributions = explain.integrated_gradients(
        fn, x_BxD, target_B, baseline=baseline_BxD, steps=steps, method=method
    )
    assert attributions.shape == x_BxD.shape
    errors.append(float(jnp.max(jnp.abs(attributions.sum(-1) - gap_B))))
  assert errors[1] < 2e-3
  assert errors[1] < errors[0] / 4


def test_integrated_gradients_exact_for_linear_model():
  w_DxC = jax.random.normal(jax.random.key(2), (5, 3))
  fn = lambda x: x @ w_DxC
  x_BxD = jax.random.normal(jax.random.key(3), (2, 5))
  target_B = jnp.array([1, 2])
  attributions = explain.integrated_gradients(fn, x_BxD, target_B, steps=3)
  np.testing.assert_allclose(attributions, x_BxD * w_DxC[:, target_B].T, rtol=1e-5, atol=1e-6)


def test_gradient_x_input_of_linear_model_is_w_times_x():
  w_DxC = jax.random.normal(jax.random.key(4), (5, 3))
  fn = lambda x: x @ w_DxC + 1.0
  x_BxD = jax.random.normal(jax.random.key(5), (3, 5))
  target_B = jnp.array([2, 0, 1])
  np.testing.assert_allclose(
      explain.saliency(fn, x_BxD, target_B), w_DxC[:, target_B].T, rtol=1e-6
  )
  np.testing.assert_allclose(
      explain.gradient_x_input(fn, x_BxD, target_B), w_DxC[:, target_B].T * x_BxD, rtol=1e-6
  )


def test_smoothgrad_without_noise_is_vanilla_and_with_noise_is_finite():
  fn = _mlp()
  x_BxD = jax.random.normal(jax.random.key(6), (3, 5))
  target_B = jnp.array([0, 1, 2])
  vanilla = explain.saliency(fn, x_BxD, target_B)
  key = jax.random.key(7)
  smooth = explain.smoothgrad(fn, x_BxD, target_B, key=key, noise_level=0.0, samples=4)
  np.testing.assert_allclose(smooth, vanilla, rtol=1e-6, atol=1e-7)
  noisy = explain.smoothgrad(fn, x_BxD, target_B, key=key, noise_level=0.2, samples=4)
  assert noisy.shape == x_BxD.shape
  assert bool(jnp.all(jnp.isfinite(noisy)))
  assert not np.allclose(noisy, vanilla)
