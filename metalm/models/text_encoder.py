"""A small transformer text encoder for few-shot classification of token ids.

``metalm.lm.transformer``'s pre-LayerNorm trunk (rotary positions, full attention) over
token embeddings, mean-pooled over the non-padding tokens; with ``num_classes`` a linear
``"head"`` on top (MAML, ANIL), else the pooled features (ProtoNets, R2-D2). Inputs are
``[B, L]`` token ids, int or float (cast to int32), padded with ``pad_id``.

References: Vaswani et al. 2017, arXiv:1706.03762; Su et al. 2021, arXiv:2104.09864.
"""

import flax.linen as nn
import jax.numpy as jnp

from metalm.lm import tokenizers, transformer


class TextEncoder(nn.Module):
  """Token ids ``[B, L]`` -> logits ``[B, num_classes]`` or features ``[B, dim]``.

  Attributes:
    num_classes: output width (the N of N-way); 0 returns the pooled features.
    vocab_size: token ids lie in ``[0, vocab_size)``; the byte tokenizer's by default.
    dim: model width.
    depth: transformer blocks.
    num_heads: attention heads.
    mlp_dim: hidden width of each block's MLP (``4 * dim`` if None).
    pad_id: the padding id, masked out of attention and pooling (None: no padding).
    dropout: dropout rate inside the blocks (needs a key when training).
  """

  num_classes: int
  vocab_size: int = tokenizers.byte_tokenizer().vocab_size
  dim: int = 64
  depth: int = 2
  num_heads: int = 4
  mlp_dim: int | None = None
  pad_id: int | None = tokenizers.Tokenizer.pad_id
  dropout: float = 0.0

  @nn.compact
  def __call__(self, tokens_BxL, train: bool = False, embeddings_BxLxD=None):
    """``embeddings_BxLxD`` replaces the embedded tokens (attacks on embeddings); the
    tokens still give the padding mask."""
    tokens_BxL = tokens_BxL.astype(jnp.int32)
    h_BxLxD = nn.Embed(self.vocab_size, self.dim, name="embed")(tokens_BxL)
    if embeddings_BxLxD is not None:
      h_BxLxD = embeddings_BxLxD
    mask_BxL = None if self.pad_id is None else tokens_BxL != self.pad_id
    h_BxLxD, _ = transformer.Trunk(self.depth, self.num_heads, self.mlp_dim or 4 * self.dim,
                                   causal=False, rotary=True, dropout=self.dropout,
                                   name="trunk")(h_BxLxD, mask_BxL, train=train)
    pooled_BxD = transformer.mean_pool(h_BxLxD, mask_BxL)
    if self.num_classes:
      return nn.Dense(self.num_classes, name="head")(pooled_BxD)
    return pooled_BxD
