"""Sequence trunks whose outputs feed different tasks, and the heads that read them.

Low-level tasks supervised at lower layers: a tagger trunk (bi-LSTM or transformer)
returns every layer's states, and each ``TagHead`` reads the layer it is given (POS at the
first, chunking at the last). Reference: Søgaard & Goldberg 2016, "Deep multi-task
learning with low level tasks supervised at lower layers" (ACL, P16-2038).

Sentence classification on different data sets at once: ``SentenceEncoder`` encodes one
sentence of each task per example (inputs ``[B, T, L]``) with one shared transformer and
returns ``{task: [B, D]}``; a ``TagHead`` keyed by the task reads its features.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from metalm.lm import transformer


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
  """Logits ``[..., num_tags]`` from the trunk output ``rep[layer]`` (per token from a
  tagger's layer, per sentence from a ``SentenceEncoder``'s task)."""

  num_tags: int
  layer: str

  @nn.compact
  def __call__(self, rep):
    return nn.Dense(self.num_tags)(rep[self.layer])


class TransformerTagger(nn.Module):
  """Embedding, then ``depth`` pre-LayerNorm transformer blocks (bidirectional, rotary
  positions, any ``metalm.lm.attention`` mechanism); token id ``pad_id`` is padding.

  ``x``: token ids ``[B, L]`` (any numeric dtype). Returns ``{"layer_<i>": [B, L, D]}``
  for every block ``i`` (1-based): its residual stream through a LayerNorm of its own,
  with padded positions zeroed.

  Attributes:
    vocab_size: number of token ids.
    dim: D, the model width.
    depth: transformer blocks.
    num_heads: attention heads.
    mlp_dim: hidden width of each block's MLP (``4 * dim`` if None).
    attention: a name of ``metalm.lm.attention`` (``full``, ``window``, ``favor``, ``lsh``).
    attention_options: keyword options of that mechanism (e.g. ``{"window": 16}``).
    pad_id: the padding id.
  """

  vocab_size: int
  dim: int = 64
  depth: int = 3
  num_heads: int = 4
  mlp_dim: int | None = None
  attention: str = "full"
  attention_options: Any = None
  pad_id: int = 0

  @nn.compact
  def __call__(self, x, train: bool = False):
    tokens = x.astype(jnp.int32)
    mask = tokens != self.pad_id
    h = nn.Embed(self.vocab_size, self.dim, name="embed")(tokens)
    layers = {}
    for i in range(1, self.depth + 1):
      h = transformer.Block(self.num_heads, self.mlp_dim or 4 * self.dim, self.attention,
                            self.attention_options, name=f"block_{i}")(h, mask, train=train)
      out = nn.LayerNorm(name=f"norm_{i}")(h)
      layers[f"layer_{i}"] = jnp.where(mask[..., None], out, 0.0)
    return layers


class SentenceEncoder(nn.Module):
  """One transformer shared by sentence tasks: ``[B, T, L]`` token ids -> ``{task: [B, D]}``.

  Example ``b`` carries one sentence of each of the ``T`` tasks; all ``B * T`` sentences
  go through ``metalm.lm.transformer.Trunk`` at once and are mean-pooled over their
  non-padding tokens.

  Attributes:
    tasks: the T task names, in the order of the input's second axis.
    vocab_size: number of token ids.
    dim: D, the model width.
    depth: transformer blocks.
    num_heads: attention heads.
    mlp_dim: hidden width of each block's MLP (``4 * dim`` if None).
    attention: a name of ``metalm.lm.attention``.
    attention_options: keyword options of that mechanism.
    pad_id: the padding id.
    dropout: dropout rate inside the blocks.
  """

  tasks: Sequence[str]
  vocab_size: int
  dim: int = 64
  depth: int = 2
  num_heads: int = 4
  mlp_dim: int | None = None
  attention: str = "full"
  attention_options: Any = None
  pad_id: int = 0
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    batch, num_tasks, length = x.shape
    if num_tasks != len(self.tasks):
      raise ValueError(f"SentenceEncoder got {num_tasks} sentences per example for the "
                       f"{len(self.tasks)} tasks {tuple(self.tasks)}.")
    tokens = x.reshape(batch * num_tasks, length).astype(jnp.int32)
    mask = tokens != self.pad_id
    h = nn.Embed(self.vocab_size, self.dim, name="embed")(tokens)
    h, _ = transformer.Trunk(self.depth, self.num_heads, self.mlp_dim or 4 * self.dim,
                             self.attention, self.attention_options, dropout=self.dropout,
                             name="trunk")(h, mask, train=train)
    pooled = transformer.mean_pool(h, mask).reshape(batch, num_tasks, self.dim)
    return {task: pooled[:, i] for i, task in enumerate(self.tasks)}
