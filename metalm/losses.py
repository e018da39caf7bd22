"""Per-set losses ``loss(out, y) -> (scalar, metrics)`` used by meta-learners."""

import jax
import jax.numpy as jnp
import optax

from metalm import registry


def mse(out: jax.Array, y: jax.Array):
  """Mean squared error; ``out`` and ``y`` are ``[B, D]``."""
  loss = jnp.mean((out - y) ** 2)
  return loss, {"mse": loss}


def cross_entropy(logits_BxC: jax.Array, labels_B: jax.Array):
  """Softmax cross-entropy with integer labels, and accuracy."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits_BxC, labels_B).mean()
  predictions_B = jnp.argmax(logits_BxC, -1).astype(labels_B.dtype)
  accuracy = jnp.mean(predictions_B == labels_B)
  return loss, {"accuracy": accuracy}


LOSSES = {"mse": mse, "cross_entropy": cross_entropy}


def get(name: str):
  return registry.lookup("loss", name, LOSSES)
