"""Masked-language-model pretraining of a text encoder, before meta-learning on top of it.

``MaskedLM`` has the ``embed`` and ``trunk`` of ``metalm.models.text_encoder.TextEncoder``
(same names, same shapes) and predicts masked tokens through the tied embedding.
``pretrain_mlm`` trains it on a corpus of token ids; ``graft`` puts the result into any
parameter tree that holds a ``TextEncoder``'s ``embed`` and ``trunk`` (a meta-learner's
initial parameters, whatever the learner adds around them).

Reference: Devlin et al. 2019, arXiv:1810.04805 (BERT's masked-LM objective; here every
chosen token becomes ``<mask>``).
"""

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from metalm.lm import tokenizers, transformer

ENCODER_KEYS = ("embed", "trunk")


class MaskedLM(nn.Module):
  """Token ids ``[B, L]`` -> logits ``[B, L, vocab_size]``; the encoder of ``TextEncoder``.

  Attributes:
    vocab_size: token ids lie in ``[0, vocab_size)``.
    dim: model width.
    depth: transformer blocks.
    num_heads: attention heads.
    mlp_dim: hidden width of each block's MLP (``4 * dim`` if None).
    pad_id: the padding id, masked out of attention.
  """

  vocab_size: int
  dim: int = 64
  depth: int = 2
  num_heads: int = 4
  mlp_dim: int | None = None
  pad_id: int | None = tokenizers.Tokenizer.pad_id

  @nn.compact
  def __call__(self, tokens_BxL):
    embed = nn.Embed(self.vocab_size, self.dim, name="embed")
    mask_BxL = None if self.pad_id is None else tokens_BxL != self.pad_id
    h_BxLxD, _ = transformer.Trunk(self.depth, self.num_heads, self.mlp_dim or 4 * self.dim,
                                   causal=False, rotary=True, name="trunk")(
                                       embed(tokens_BxL), mask_BxL)
    return embed.attend(h_BxLxD)


def mask_tokens(key, tokens_BxL, *, rate: float, pad_id: int, mask_id: int):
  """``(inputs, chosen)``: a ``rate`` fraction of the real tokens replaced by ``mask_id``."""
  chosen_BxL = (jax.random.uniform(key, tokens_BxL.shape) < rate) & (tokens_BxL != pad_id)
  return jnp.where(chosen_BxL, mask_id, tokens_BxL), chosen_BxL


def pretrain_mlm(tokens_NxL: np.ndarray, *, module: MaskedLM, steps: int, batch_size: int,
                 learning_rate: float, mask_rate: float = 0.15, seed: int = 0):
  """Trains ``module`` with Adam on masked tokens of the rows of ``tokens_NxL``.

  Step ``k`` reads rows drawn by ``default_rng([seed, k])`` and masks with
  ``fold_in(key, k)``, so the result is a function of the arguments.

  Returns:
    ``(params, losses)``: the trained ``{"embed", "trunk"}`` parameters and the loss of
    every step (cross-entropy on the masked positions).
  """
  tokenizer = tokenizers.Tokenizer
  key = jax.random.key(seed)
  params = module.init(key, jnp.asarray(tokens_NxL[:1]))["params"]
  tx = optax.adam(learning_rate)

  @jax.jit
  def step(params, opt_state, tokens_BxL, step_key):
    inputs, chosen = mask_tokens(step_key, tokens_BxL, rate=mask_rate,
                                 pad_id=module.pad_id, mask_id=tokenizer.mask_id)

    def loss_fn(p):
      logits = module.apply({"params": p}, inputs)
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, tokens_BxL)
      weights = chosen.astype(losses.dtype)
      return jnp.sum(losses * weights) / jnp.maximum(weights.sum(), 1.0)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = tx.init(params)
  losses = []
  for k in range(steps):
    rows = np.random.default_rng([seed, k]).integers(0, len(tokens_NxL), batch_size)
    params, opt_state, loss = step(params, opt_state, jnp.asarray(tokens_NxL[rows]),
                                   jax.random.fold_in(key, k))
    losses.append(float(loss))
  return {k: params[k] for k in ENCODER_KEYS}, losses


def graft(params: Any, encoder: Mapping[str, Any]) -> Any:
  """``params`` with every ``{"embed", "trunk", ...}`` entry's encoder replaced.

  Raises:
    ValueError: no entry holds both keys, or the shapes differ (the message names them).
  """
  found = []

  def visit(tree, path):
    if not isinstance(tree, Mapping):
      return tree
    if all(k in tree for k in ENCODER_KEYS):
      for k in ENCODER_KEYS:
        want = jax.tree.map(jnp.shape, tree[k])
        got = jax.tree.map(jnp.shape, encoder[k])
        if want != got:
          raise ValueError(f"The pretrained {k!r} does not fit {'/'.join(path) or 'params'}"
                           f"/{k}: shapes {got} against {want}.")
      found.append(path)
      return {**tree, **{k: jax.tree.map(jnp.asarray, encoder[k]) for k in ENCODER_KEYS}}
    return {k: visit(v, path + (str(k),)) for k, v in tree.items()}

  out = visit(params, ())
  if not found:
    raise ValueError("No 'embed' and 'trunk' entries to put the pretrained encoder in: the "
                     "model is not a transformer_encoder.")
  return out


def with_encoder(init, encoder: Mapping[str, Any]):
  """``init(key) -> (params, state)`` with ``encoder`` grafted into the params."""

  def init_with_encoder(key):
    params, state = init(key)
    return graft(params, encoder), state

  return init_with_encoder
