"""A bi-LSTM tagger trunk whose layers feed different tasks, and a tagging head.

Low-level tasks supervised at lower layers: the trunk returns every layer's states, and
each ``TagHead`` reads the layer it is given (POS at the first, chunking at the last).
Reference: Søgaard & Goldberg 2016, "Deep multi-task learning with low level tasks
supervised at lower layers" (ACL, P16-2038).
"""

import flax.linen as nn
import jax.numpy as jnp


class BiLSTMTagger(nn.Module):
  """Embedding, then ``num_layers`` bi-LSTM layers; token id 0 is padding.

  ``x``: token ids ``[B, L]`` (any numeric dtype). Returns ``{"layer_<i>": [B, L, 2H]}``
  for every layer ``i`` (1-based), with padded positions zeroed.

  Attributes:
    vocab_size: number of token ids.
    embed_dim: embedding width.
    hidden: H, LSTM units per direction.
    num_layers: stacked bi-LSTM layers.
  """

  vocab_size: int
  embed_dim: int = 64
  hidden: int = 100
  num_layers: int = 3

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    tokens = x.astype(jnp.int32)
    mask = tokens > 0
    lengths = mask.sum(axis=-1)
    h = nn.Embed(self.vocab_size, self.embed_dim)(tokens)
    layers = {}
    for i in range(1, self.num_layers + 1):
      h = nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(self.hidden)),
                           nn.RNN(nn.OptimizedLSTMCell(self.hidden)))(h, seq_lengths=lengths)
      h = jnp.where(mask[..., None], h, 0.0)
      layers[f"layer_{i}"] = h
    return layers


class TagHead(nn.Module):
  """Per-token logits ``[B, L, num_tags]`` from the trunk output ``rep[layer]``."""

  num_tags: int
  layer: str

  @nn.compact
  def __call__(self, rep):
    return nn.Dense(self.num_tags)(rep[self.layer])
