"""Domain-adversarial training: the gradient reversal layer and the DANN loss.

Ganin et al., 2016, arXiv:1505.07818.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax


@jax.custom_vjp
def gradient_reversal(x, scale):
  """Identity forward; multiplies the incoming gradient by ``-scale`` backward.

  Ganin et al., 2016, arXiv:1505.07818.

  ``x`` may be any pytree; ``scale`` (lambda) is a scalar that may be traced (a
  schedule) and receives no gradient.
  """
  del scale
  return x


def _reversal_fwd(x, scale):
  return x, scale


def _reversal_bwd(scale, g):
  reversed_g = jax.tree.map(lambda t: (-scale * t).astype(t.dtype), g)
  return reversed_g, jnp.zeros_like(scale)


gradient_reversal.defvjp(_reversal_fwd, _reversal_bwd)


def reversal_schedule(progress, gamma: float = 10.0):
  """DANN's lambda ramp ``2 / (1 + exp(-gamma * p)) - 1`` for training progress p in [0, 1]."""
  return 2.0 / (1.0 + jnp.exp(-gamma * progress)) - 1.0


def dann_loss(
    features_BxD,
    labels_B,
    domain_B,
    *,
    task_head: Callable[[jax.Array], jax.Array],
    domain_head: Callable[[jax.Array], jax.Array],
    reversal_scale=1.0,
):
  """Task loss on the source examples plus domain loss through the gradient reversal.

  Ganin et al., 2016, arXiv:1505.07818.

  Minimizing it trains the task head and the domain classifier as usual while the
  feature extractor (upstream of ``features_BxD``) receives the task gradient minus
  ``reversal_scale`` times the domain gradient, making features domain-invariant.

  Args:
    features_BxD: shared features of a mixed batch (source and target examples).
    labels_B: integer task labels (only source entries are used).
    domain_B: integer domain labels, 0 for source and 1 for target.
    task_head: ``features -> task logits [B, C]``.
    domain_head: ``features -> domain logits [B, 2]``.
    reversal_scale: lambda of the gradient reversal (may follow ``reversal_schedule``).

  Returns:
    ``(loss, {"task_loss", "domain_loss", "domain_accuracy"})``.
  """
  source_B = (domain_B == 0).astype(features_BxD.dtype)
  task_ce_B = optax.softmax_cross_entropy_with_integer_labels(task_head(features_BxD), labels_B)
  task_loss = jnp.sum(source_B * task_ce_B) / jnp.maximum(jnp.sum(source_B), 1.0)
  reversed_BxD = gradient_reversal(features_BxD, jnp.asarray(reversal_scale, features_BxD.dtype))
  domain_logits_Bx2 = domain_head(reversed_BxD)
  domain_loss = optax.softmax_cross_entropy_with_integer_labels(
      domain_logits_Bx2, domain_B
  ).mean()
  domain_accuracy = jnp.mean(jnp.argmax(domain_logits_Bx2, -1) == domain_B)
  metrics = {
      "task_loss": task_loss,
      "domain_loss": domain_loss,
      "domain_accuracy": domain_accuracy,
  }
  return task_loss + domain_loss, metrics
