"""Sinusoid task family: ranges, shapes, determinism inside jit."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from metalm.data import sinusoid


def test_tasks_follow_finn_ranges_and_functions():
  key = jax.random.key(0)
  tasks = jax.jit(lambda k: sinusoid.sampler(num_support=10, num_query=15)
                  .sample(k, 2000))(key)
  assert tasks.support_x.shape == (2000, 10, 1) and tasks.query_y.shape == (2000, 15, 1)
  x = jnp.concatenate([tasks.support_x, tasks.query_x], axis=1)
  assert x.min() >= -5.0 and x.max() <= 5.0 and x.max() - x.min() > 9.9
  functions = sinusoid.sample_functions(jax.random.split(key)[0], 2000)
  assert 0.1 <= functions.amplitude_T.min() and functions.amplitude_T.max() <= 5.0
  assert 0.0 <= functions.phase_T.min() and functions.phase_T.max() <= math.pi
  # Targets are A sin(x - phase) of the sampled functions.
  y = jnp.concatenate([tasks.support_y, tasks.query_y], axis=1)[..., 0]
  np.testing.assert_allclose(y, functions(x[..., 0]), rtol=1e-5, atol=1e-5)


def test_same_key_same_tasks_and_different_keys_differ():
  sample = jax.jit(lambda k: sinusoid.sampler(num_support=5, num_query=5).sample(k, 4))
  a, b, c = sample(jax.random.key(1)), sample(jax.random.key(1)), sample(jax.random.key(2))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.allclose(a.support_y, c.support_y)
