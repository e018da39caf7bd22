"""Pre-LayerNorm transformers with pluggable attention: an encoder and a decoder-only LM.

Attention is chosen by name from ``attention.ATTENTIONS``. Positions are rotary (default)
or learned. Blocks can be reversible (Reformer) and the LM can carry a Transformer-XL
memory of past hidden states. Modules take ``__call__(tokens, train)`` so
``functional.from_linen`` wraps them; ``lm_model(config)`` builds ``ModelFns``.

Transformer-XL relative positions are rotary here: rotating queries and keys by their
absolute positions makes every score depend only on the offset between them, so a
memory slot keeps its meaning as the segment moves on.

References: Vaswani et al., 2017, arXiv:1706.03762; Su et al., 2021, arXiv:2104.09864
(rotary); Kitaev et al., 2020, arXiv:2001.04451 (reversible); Dai et al., 2019,
arXiv:1901.02860 (Transformer-XL).
"""

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from metalm import registry
from metalm.lm import attention
from metalm.models import functional


def rotary(x_BxLxHxD: jax.Array, positions_L: jax.Array, base: float = 10000.0):
  """Rotates feature pairs by position-dependent angles (Su et al., 2021, 2104.09864)."""
  half = x_BxLxHxD.shape[-1] // 2
  freqs_F = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles_LxF = positions_L.astype(jnp.float32)[:, None] * freqs_F[None, :]
  sin, cos = jnp.sin(angles_LxF)[None, :, None, :], jnp.cos(angles_LxF)[None, :, None, :]
  x1, x2 = x_BxLxHxD[..., :half], x_BxLxHxD[..., half:2 * half]
  rotated = [x1 * cos - x2 * sin, x1 * sin + x2 * cos, x_BxLxHxD[..., 2 * half:]]
  return jnp.concatenate(rotated, axis=-1).astype(x_BxLxHxD.dtype)


def _attention_options(options) -> dict:
  options = dict(options or {})
  if "seed" in options:  # keys are not config values; a seed is
    options["key"] = jax.random.PRNGKey(options.pop("seed"))
  return options


def _full_weights(q_BxLxHxD, k_BxSxHxD, mask_BxS, causal):
  """The ``[B, H, L, S]`` softmax weights that ``attention.full`` applies to the values."""
  length, key_length, depth = q_BxLxHxD.shape[1], k_BxSxHxD.shape[1], q_BxLxHxD.shape[-1]
  scores_BxHxLxS = jnp.einsum("blhd,bshd->bhls", q_BxLxHxD, k_BxSxHxD) / math.sqrt(depth)
  allowed = jnp.ones((1, 1, length, key_length), bool)
  if causal:
    allowed = allowed & attention._causal_mask_LxS(length, key_length)[None, None]
  if mask_BxS is not None:
    allowed = allowed & mask_BxS[:, None, None, :]
  return jax.nn.softmax(jnp.where(allowed, scores_BxHxLxS, attention._NEG), axis=-1)


class SelfAttention(nn.Module):
  """Multi-head attention over ``[memory; x]`` with a named attention function.

  An attention that shares queries and keys (``attention.SHARED_QUERY_KEY``, e.g. LSH)
  gets no key projection: its keys are the queries' projection of the context.

  With full attention and a mutable ``"intermediates"`` collection (outside ``init``) it
  sows its softmax weights ``[B, H, L, S]`` as ``"attention_probs"``; outputs are unchanged.
  """

  num_heads: int
  attention: str = "full"
  attention_options: Any = None
  causal: bool = False
  rotary: bool = True

  @nn.compact
  def __call__(self, x_BxLxD, mask_BxL=None, memory_BxMxD=None):
    batch, length, dim = x_BxLxD.shape
    head_dim = dim // self.num_heads
    context_BxSxD = x_BxLxD
    if memory_BxMxD is not None:
      context_BxSxD = jnp.concatenate([memory_BxMxD, x_BxLxD], axis=1)
      if mask_BxL is not None:
        mem_mask = jnp.ones(memory_BxMxD.shape[:2], bool)
        mask_BxL = jnp.concatenate([mem_mask, mask_BxL], axis=1)
    key_length = context_BxSxD.shape[1]
    proj = lambda name: nn.DenseGeneral((self.num_heads, head_dim), name=name)
    query = proj("query")
    key = query if self.attention in attention.SHARED_QUERY_KEY else proj("key")
    q_BxLxHxD = query(x_BxLxD)
    k_BxSxHxD, v_BxSxHxD = key(context_BxSxD), proj("value")(context_BxSxD)
    if self.rotary:
      positions_S = jnp.arange(key_length)
      q_BxLxHxD = rotary(q_BxLxHxD, positions_S[key_length - length:])
      k_BxSxHxD = rotary(k_BxSxHxD, positions_S)
    if (self.attention == "full" and self.is_mutable_collection("intermediates")
        and not self.is_initializing()):
      self.sow("intermediates", "attention_probs",
               _full_weights(q_BxLxHxD, k_BxSxHxD, mask_BxL, self.causal))
    fn = attention.get(self.attention)
    out_BxLxHxD = fn(q_BxLxHxD, k_BxSxHxD, v_BxSxHxD, mask_BxS=mask_BxL, causal=self.causal,
                     **_attention_options(self.attention_options))
    return nn.DenseGeneral(dim, axis=(-2, -1), name="out")(out_BxLxHxD)


class Mlp(nn.Module):
  """LayerNorm, then a GELU MLP back to the input width."""

  mlp_dim: int

  @nn.compact
  def __call__(self, x_BxLxD):
    h_BxLxF = nn.gelu(nn.Dense(self.mlp_dim)(nn.LayerNorm()(x_BxLxD)))
    return nn.Dense(x_BxLxD.shape[-1])(h_BxLxF)


class Block(nn.Module):
  """A pre-LayerNorm block: ``x + F(x)`` then ``+ G(.)`` with F attention, G an MLP."""

  num_heads: int
  mlp_dim: int
  attention: str = "full"
  attention_options: Any = None
  causal: bool = False
  rotary: bool = True
  dropout: float = 0.0

  def setup(self):
    self.attn_norm = nn.LayerNorm()
    self.attn = SelfAttention(self.num_heads, self.attention, self.attention_options,
                              self.causal, self.rotary)
    self.mlp = Mlp(self.mlp_dim)
    self.drop = nn.Dropout(self.dropout)

  def attend(self, x_BxLxD, mask_BxL=None, memory_BxMxD=None, train=False):
    """F: LayerNorm then attention (memory goes through the same LayerNorm)."""
    memory = None if memory_BxMxD is None else self.attn_norm(memory_BxMxD)
    out = self.attn(self.attn_norm(x_BxLxD), mask_BxL, memory)
    return self.drop(out, deterministic=not train)

  def feed(self, x_BxLxD, train=False):
    """G: LayerNorm then a GELU MLP."""
    return self.drop(self.mlp(x_BxLxD), deterministic=not train)

  def __call__(self, x_BxLxD, mask_BxL=None, memory_BxMxD=None, train=False):
    x_BxLxD = x_BxLxD + self.attend(x_BxLxD, mask_BxL, memory_BxMxD, train)
    return x_BxLxD + self.feed(x_BxLxD, train)


class ReversibleBlock(nn.Module):
  """A reversible pair: ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``; ``invert`` undoes it.

  ``reversible_stack`` chains these with a backward pass that rebuilds each pair's
  inputs from its outputs instead of storing them.

  Reference: Kitaev, Kaiser & Levskaya, 2020, arXiv:2001.04451 (Reformer); Gomez et al.,
  2017, arXiv:1707.04585.
  """

  num_heads: int
  mlp_dim: int
  attention: str = "full"
  attention_options: Any = None
  causal: bool = False
  rotary: bool = True

  def setup(self):
    self.block = Block(self.num_heads, self.mlp_dim, self.attention,
                       self.attention_options, self.causal, self.rotary)

  def attend(self, x_BxLxD, mask_BxL=None):
    """F: LayerNorm then attention."""
    return self.block.attend(x_BxLxD, mask_BxL)

  def feed(self, x_BxLxD):
    """G: LayerNorm then the MLP."""
    return self.block.feed(x_BxLxD)

  def __call__(self, x1_BxLxD, x2_BxLxD, mask_BxL=None):
    y1_BxLxD = x1_BxLxD + self.attend(x2_BxLxD, mask_BxL)
    return y1_BxLxD, x2_BxLxD + self.feed(y1_BxLxD)

  def invert(self, y1_BxLxD, y2_BxLxD, mask_BxL=None):
    """The inputs ``(x1, x2)`` that produce ``(y1, y2)``."""
    x2_BxLxD = y2_BxLxD - self.feed(y1_BxLxD)
    return y1_BxLxD - self.attend(x2_BxLxD, mask_BxL), x2_BxLxD


def reversible_stack(block: ReversibleBlock, params_seq, x1_BxLxD, x2_BxLxD, mask_BxL=None):
  """Applies ``block`` with each of ``params_seq`` in turn, storing no activations.

  The backward pass walks the stack from the top, rebuilding every block's inputs from
  its outputs while it differentiates F and G there (Gomez et al. 2017, Algorithm 1), so
  the memory of training does not grow with depth, for one extra forward pass per block
  (Kitaev et al. 2020, Sec. 3). Reverse mode only: forward-mode autodiff (``jax.jvp``,
  ``jax.linearize``) is not defined through it. Gradients match ordinary autodiff up to
  the rounding of the reconstruction.

  Args:
    block: an unbound ``ReversibleBlock`` (the definition every layer shares).
    params_seq: one ``params`` collection per layer, bottom first.
  """

  @jax.custom_vjp
  def stack(params_seq, x1, x2, mask):
    for params in params_seq:
      x1, x2 = block.apply({"params": params}, x1, x2, mask)
    return x1, x2

  def stack_fwd(params_seq, x1, x2, mask):
    outputs = stack(params_seq, x1, x2, mask)
    return outputs, (params_seq, outputs, mask)

  def feed(params, h):
    return block.apply({"params": params}, h, method=ReversibleBlock.feed)

  def stack_bwd(residuals, cotangents):
    params_seq, (y1, y2), mask = residuals
    g1, g2 = cotangents  # Of the current block's outputs y1, y2.
    attend = lambda p, h: block.apply({"params": p}, h, mask, method=ReversibleBlock.attend)
    grads = []
    for params in reversed(params_seq):
      g_of_y1, feed_vjp = jax.vjp(feed, params, y1)
      x2 = y2 - g_of_y1
      f_of_x2, attend_vjp = jax.vjp(attend, params, x2)
      x1 = y1 - f_of_x2
      feed_grad, through_g = feed_vjp(g2)
      g1 = g1 + through_g  # y1 reaches the loss directly and through G: x1's cotangent.
      attend_grad, through_f = attend_vjp(g1)
      g2 = g2 + through_f  # x2's cotangent.
      grads.append(jax.tree.map(jnp.add, feed_grad, attend_grad))
      y1, y2 = x1, x2
    return tuple(reversed(grads)), g1, g2, None

  stack.defvjp(stack_fwd, stack_bwd)
  return stack(tuple(params_seq), x1_BxLxD, x2_BxLxD, mask_BxL)


class Trunk(nn.Module):
  """A stack of blocks with an optional per-layer memory (Transformer-XL)."""

  depth: int
  num_heads: int
  mlp_dim: int
  attention: str = "full"
  attention_options: Any = None
  causal: bool = False
  rotary: bool = True
  reversible: bool = False
  dropout: float = 0.0

  @nn.compact
  def __call__(self, h_BxLxD, mask_BxL=None, memories=None, memory_len=0, train=False):
    """Returns ``(h_BxLxD, new_memories)``; ``new_memories`` is None unless
    ``memory_len`` > 0: each layer's last ``memory_len`` inputs over old memory and this
    segment, with gradients stopped."""
    fields = dict(num_heads=self.num_heads, mlp_dim=self.mlp_dim, attention=self.attention,
                  attention_options=self.attention_options, causal=self.causal,
                  rotary=self.rotary)
    if self.reversible:
      if memories is not None or memory_len:
        raise ValueError("Reversible layers do not take a Transformer-XL memory.")
      x1, x2 = h_BxLxD, h_BxLxD
      names = [f"block_{i}" for i in range(self.depth)]
      if self.is_initializing():
        for name in names:
          x1, x2 = ReversibleBlock(**fields, name=name)(x1, x2, mask_BxL)
      else:
        x1, x2 = reversible_stack(ReversibleBlock(**fields, parent=None),
                                  [self.variables["params"][n] for n in names],
                                  x1, x2, mask_BxL)
      return nn.LayerNorm(name="final_norm")(0.5 * (x1 + x2)), None
    new_memories = []
    for i in range(self.depth):
      memory_BxMxD = None if memories is None else memories[i]
      if memory_len:
        past = h_BxLxD if memory_BxMxD is None else jnp.concatenate([memory_BxMxD, h_BxLxD], 1)
        new_memories.append(jax.lax.stop_gradient(past[:, -memory_len:]))
      h_BxLxD = Block(**fields, dropout=self.dropout, name=f"block_{i}")(
          h_BxLxD, mask_BxL, memory_BxMxD, train)
    return nn.LayerNorm(name="final_norm")(h_BxLxD), (tuple(new_memories) or None)


class _Embed(nn.Module):
  """Token embedding plus learned positions when not rotary."""

  vocab_size: int
  dim: int
  positions: str
  max_len: int

  def setup(self):
    if self.positions not in ("rotary", "learned"):
      raise ValueError(f"positions must be 'rotary' or 'learned', got {self.positions!r}.")
    self.tokens = nn.Embed(self.vocab_size, self.dim)
    if self.positions == "learned":
      self.pos = self.param("pos", nn.initializers.normal(0.02), (self.max_len, self.dim))

  def __call__(self, tokens_BxL, offset: int = 0):
    h_BxLxD = self.tokens(tokens_BxL)
    if self.positions == "learned":
      length = tokens_BxL.shape[1]
      h_BxLxD = h_BxLxD + self.pos[None, offset:offset + length]
    return h_BxLxD

  def attend(self, h_BxLxD):
    return self.tokens.attend(h_BxLxD)


def mean_pool(h_BxLxD, mask_BxL=None):
  """The mean of ``h`` over the positions where ``mask`` is True (all if None)."""
  weights_BxL = (jnp.ones(h_BxLxD.shape[:2], h_BxLxD.dtype) if mask_BxL is None
                 else mask_BxL.astype(h_BxLxD.dtype))
  return jnp.einsum("bl,bld->bd", weights_BxL, h_BxLxD) / jnp.maximum(
      weights_BxL.sum(1, keepdims=True), 1.0)


def _mask(tokens_BxL, pad_id):
  return None if pad_id is None else tokens_BxL != pad_id


class Encoder(nn.Module):
  """Bidirectional encoder with a classification (pooled) or per-token tagging head.

  ``__call__(tokens_BxL, train)`` returns ``logits_BxC`` (``head="classify"``, mean or
  CLS pooling over non-padding tokens) or ``logits_BxLxC`` (``head="tag"``).
  """

  vocab_size: int
  num_outputs: int
  dim: int = 64
  depth: int = 2
  num_heads: int = 4
  mlp_dim: int | None = None
  attention: str = "full"
  attention_options: Any = None
  positions: str = "rotary"
  max_len: int = 512
  head: str = "classify"
  pooling: str = "mean"
  reversible: bool = False
  pad_id: int | None = None
  dropout: float = 0.0

  @nn.compact
  def __call__(self, tokens_BxL, train: bool = False):
    tokens_BxL = tokens_BxL.astype(jnp.int32)
    mask_BxL = _mask(tokens_BxL, self.pad_id)
    h_BxLxD = _Embed(self.vocab_size, self.dim, self.positions, self.max_len, name="embed")(
        tokens_BxL)
    cls = self.head == "classify" and self.pooling == "cls"
    if cls:
      cls_1x1xD = self.param("cls", nn.initializers.normal(0.02), (1, 1, self.dim))
      cls_Bx1xD = jnp.broadcast_to(cls_1x1xD, (h_BxLxD.shape[0], 1, self.dim))
      h_BxLxD = jnp.concatenate([cls_Bx1xD, h_BxLxD], axis=1)
      if mask_BxL is not None:
        mask_BxL = jnp.concatenate([jnp.ones_like(mask_BxL[:, :1]), mask_BxL], axis=1)
    h_BxLxD, _ = Trunk(self.depth, self.num_heads, self.mlp_dim or 4 * self.dim,
                       self.attention, self.attention_options, causal=False,
                       rotary=self.positions == "rotary", reversible=self.reversible,
                       dropout=self.dropout, name="trunk")(h_BxLxD, mask_BxL, train=train)
    if self.head == "tag":
      return nn.Dense(self.num_outputs, name="head")(h_BxLxD)
    if self.head != "classify":
      raise ValueError(f"head must be 'classify' or 'tag', got {self.head!r}.")
    if cls:
      pooled_BxD = h_BxLxD[:, 0]
    elif self.pooling == "mean":
      pooled_BxD = mean_pool(h_BxLxD, mask_BxL)
    else:
      raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}.")
    return nn.Dense(self.num_outputs, name="head")(pooled_BxD)


class DecoderLM(nn.Module):
  """Decoder-only causal LM: ``__call__(tokens_BxL, train) -> logits_BxLxV``.

  ``with_memory`` runs one segment against a Transformer-XL memory (rotary positions
  only) and returns the next memory.
  """

  vocab_size: int
  dim: int = 64
  depth: int = 2
  num_heads: int = 4
  mlp_dim: int | None = None
  attention: str = "full"
  attention_options: Any = None
  positions: str = "rotary"
  max_len: int = 512
  tie_embeddings: bool = True
  reversible: bool = False
  pad_id: int | None = None
  dropout: float = 0.0

  def setup(self):
    self.embed = _Embed(self.vocab_size, self.dim, self.positions, self.max_len)
    self.trunk = Trunk(self.depth, self.num_heads, self.mlp_dim or 4 * self.dim,
                       self.attention, self.attention_options, causal=True,
                       rotary=self.positions == "rotary", reversible=self.reversible,
                       dropout=self.dropout)
    if not self.tie_embeddings:
      self.head = nn.Dense(self.vocab_size, use_bias=False)

  def with_memory(self, tokens_BxL, memories: Sequence[jax.Array] | None, memory_len: int,
                  train: bool = False):
    """Returns ``(logits_BxLxV, new_memories)``; memories are per-layer ``BxMxD``."""
    if memory_len and self.positions != "rotary":
      raise ValueError("Transformer-XL memory needs rotary (relative) positions.")
    tokens_BxL = tokens_BxL.astype(jnp.int32)
    h_BxLxD = self.embed(tokens_BxL)
    h_BxLxD, new_memories = self.trunk(h_BxLxD, _mask(tokens_BxL, self.pad_id), memories,
                                       memory_len, train)
    logits = self.embed.attend(h_BxLxD) if self.tie_embeddings else self.head(h_BxLxD)
    return logits, new_memories

  def __call__(self, tokens_BxL, train: bool = False):
    return self.with_memory(tokens_BxL, None, 0, train)[0]


def next_token_loss(logits_BxLxV, tokens_BxL, mask_BxL=None):
  """Mean cross-entropy of predicting ``tokens[:, t + 1]`` from position ``t``."""
  losses_BxL = optax.softmax_cross_entropy_with_integer_labels(
      logits_BxLxV[:, :-1], tokens_BxL[:, 1:].astype(jnp.int32))
  weights_BxL = (jnp.ones_like(losses_BxL) if mask_BxL is None
                 else mask_BxL[:, 1:].astype(losses_BxL.dtype))
  return jnp.sum(losses_BxL * weights_BxL) / jnp.maximum(jnp.sum(weights_BxL), 1.0)


MODELS = {"decoder": DecoderLM, "encoder": Encoder}


def lm_model(config) -> functional.ModelFns:
  """``ModelFns`` for ``config.kind`` ("decoder" or "encoder") over token batches.

  Args:
    config: a mapping with ``kind``, ``seq_len`` (example length for init) and the
      module's fields (``vocab_size``, ``dim``, ``attention``, ...).
  """
  config = dict(config)
  module_cls = registry.lookup("language model", config.pop("kind", "decoder"), MODELS)
  seq_len = config.pop("seq_len")
  registry.check_keywords(module_cls, config, where="config.model",
                          what=module_cls.__name__, ignore=("parent", "name"))
  return functional.from_linen(module_cls(**config), (1, seq_len))
