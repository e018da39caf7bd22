"""Quantization error bounds, the straight-through gradient, exact pruning, the schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalm.tools import compression


def _params():
  k1, k2 = jax.random.split(jax.random.key(0))
  return {
      "conv": {"kernel": jax.random.normal(k1, (3, 3, 2, 4)), "bias": jnp.ones(4)},
      "head": {"kernel": jax.random.normal(k2, (6, 3)) * jnp.array([[1.0, 10.0, 0.0]]),
               "bias": jnp.zeros(3)},
  }


def test_weight_quantization_error_at_most_half_a_step_and_size():
  params = _params()
  qparams = compression.quantize_params(params)
  conv_q = qparams["conv"]["kernel"]
  assert isinstance(conv_q, compression.QuantizedTensor)
  assert conv_q.values.dtype == jnp.int8 and conv_q.scale.shape == (4,)
  assert qparams["conv"]["bias"] is params["conv"]["bias"]  # 1-D leaves stay float.
  restored = compression.dequantize_params(qparams)
  for name in ("conv", "head"):
    w, scale = np.asarray(params[name]["kernel"]), np.asarray(qparams[name]["kernel"].scale)
    error = np.abs(np.asarray(restored[name]["kernel"]) - w)
    assert np.all(error <= scale / 2 + 1e-6 * np.abs(w))
  np.testing.assert_array_equal(restored["head"]["kernel"][:, 2], 0.0)  # All-zero channel.
  kernels, vectors = 3 * 3 * 2 * 4 + 6 * 3, 4 + 3
  assert compression.float32_size_bytes(params) == 4 * (kernels + vectors)
  assert compression.size_bytes(qparams) == kernels + 4 * (4 + 3) + 4 * vectors


def test_calibration_and_fake_quant():
  batches = [jnp.array([[0.5, -2.0], [1.0, 0.0]]), jnp.array([[4.0, -1.0], [0.2, 0.3]])]
  scale = compression.calibrate_scale(batches, method="minmax")
  np.testing.assert_allclose(scale, 4.0 / 127, rtol=1e-6)
  outliers = [jnp.concatenate([jnp.linspace(-1.0, 1.0, 999), jnp.array([100.0])])]
  robust = compression.calibrate_scale(outliers, method="percentile", percentile=99.0)
  assert float(robust) < 1.1 / 127
  x = jnp.linspace(-3.0, 3.0, 101)
  y = compression.fake_quant(x, 0.5, bits=3)  # qmax 3: values in {-1.5, ..., 1.5}.
  np.testing.assert_allclose(y, jnp.clip(jnp.round(x / 0.5), -3, 3) * 0.5)
  with pytest.raises(ValueError):
    compression.calibrate_scale(batches, method="mse")


def test_straight_through_gradient_identity_inside_zero_outside():
  x = jnp.array([-3.0, -1.49, -0.3, 0.0, 0.77, 1.5, 1.51, 9.0])
  grad = jax.grad(lambda x_: jnp.sum(compression.fake_quant(x_, 0.5, bits=3) * 2.0))(x)
  inside = jnp.abs(x) <= 1.5
  np.testing.assert_array_equal(grad, jnp.where(inside, 2.0, 0.0))
  # Quantization-aware training: kernels get identity gradients, values are on the grid.
  params = _params()
  qat = compression.fake_quant_params(params)
  np.testing.assert_allclose(qat["conv"]["kernel"],
                             compression.dequantize_params(
                                 compression.quantize_params(params))["conv"]["kernel"],
                             rtol=1e-6, atol=1e-7)
  grads = jax.grad(lambda p: sum(jnp.sum(leaf) for leaf in
                                 jax.tree.leaves(compression.fake_quant_params(p))))(params)
  for leaf in jax.tree.leaves(grads):
    np.testing.assert_array_equal(leaf, 1.0)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_pruning_hits_sparsity_exactly_with_ties(sparsity):
  params = {"a": {"kernel": jnp.ones((4, 5)), "bias": jnp.ones(5)},  # All ties.
            "b": {"kernel": jnp.arange(30.0).reshape(5, 6) % 4}}  # Many ties.
  n_a, n_b = 20, 30
  layer = compression.magnitude_masks(params, sparsity, scope="layer")
  assert int(jnp.sum(~layer["a"]["kernel"])) == round(sparsity * n_a)
  assert int(jnp.sum(~layer["b"]["kernel"])) == round(sparsity * n_b)
  assert bool(jnp.all(layer["a"]["bias"]))
  glob = jax.jit(lambda p, s: compression.magnitude_masks(p, s))(params, sparsity)
  pruned = int(jnp.sum(~glob["a"]["kernel"]) + jnp.sum(~glob["b"]["kernel"]))
  assert pruned == round(sparsity * (n_a + n_b))
  np.testing.assert_allclose(compression.sparsity_of(glob), pruned / (n_a + n_b))
  masked = compression.apply_mask(params, glob)
  kept_b = np.asarray(params["b"]["kernel"])[np.asarray(glob["b"]["kernel"])]
  dropped_b = np.asarray(params["b"]["kernel"])[~np.asarray(glob["b"]["kernel"])]
  if kept_b.size and dropped_b.size:
    assert kept_b.min() >= dropped_b.max()  # Largest magnitudes survive.
  assert int(jnp.sum(masked["b"]["kernel"] == 0)) >= int(jnp.sum(~glob["b"]["kernel"]))


def test_polynomial_schedule_endpoints():
  schedule = lambda step: compression.polynomial_sparsity(
      step, initial_sparsity=0.1, final_sparsity=0.8, begin_step=10, end_step=110)
  assert float(schedule(0)) == pytest.approx(0.1)
  assert float(schedule(10)) == pytest.approx(0.1)
  assert float(schedule(110)) == pytest.approx(0.8)
  assert float(schedule(500)) == pytest.approx(0.8)
  assert float(schedule(60)) == pytest.approx(0.8 - 0.7 * 0.5**3)
  values = [float(schedule(s)) for s in range(0, 120, 10)]
  assert values == sorted(values)
