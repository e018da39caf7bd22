"""Small problems with known answers, shared by the meta-learner tests."""

import jax
import jax.numpy as jnp

from metalm import types


def linear_task(key, num_support=6, num_query=5, dim=3) -> types.TaskBatch:
  """A random linear-regression task with ``[S, dim]`` / ``[Q, dim]`` inputs."""
  ks = jax.random.split(key, 4)
  return types.TaskBatch(
      jax.random.normal(ks[0], (num_support, dim)),
      jax.random.normal(ks[1], (num_support, 1)),
      jax.random.normal(ks[2], (num_query, dim)),
      jax.random.normal(ks[3], (num_query, 1)),
  )


def to_f64(tree):
  """Casts every leaf to float64 (inside the ``x64`` fixture)."""
  return jax.tree.map(lambda a: a.astype(jnp.float64), tree)
