"""Language-model losses in the meta-learners' form ``loss(out, y) -> (loss, metrics)``."""

import jax
import jax.numpy as jnp

from metalm.lm import tokenizers, transformer


def lm_loss(logits_BxLxV: jax.Array, tokens_BxL: jax.Array,
            pad_id: int = tokenizers.Tokenizer.pad_id):
  """Mean next-token cross-entropy (nats per token) over the non-padding targets.

  The targets are ``tokens[:, 1:]``; a target equal to ``pad_id`` has weight 0.

  Returns:
    ``(loss, {"perplexity": exp(loss), "bits_per_token": loss / ln 2})``.
  """
  loss = transformer.next_token_loss(logits_BxLxV, tokens_BxL, tokens_BxL != pad_id)
  return loss, {"perplexity": jnp.exp(loss), "bits_per_token": loss / jnp.log(2.0)}
