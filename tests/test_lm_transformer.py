"""Tests for metalm.lm.transformer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from metalm.lm import tokenizers, transformer

V, D, L = 24, 16, 8
SMALL = dict(vocab_size=V, dim=D, depth=2, num_heads=2, mlp_dim=32)


def tokens(seed=0, length=L, batch=2):
  return jax.random.randint(jax.random.PRNGKey(seed), (batch, length), 0, V - 1)


def init(module, x):
  return module.init(jax.random.PRNGKey(0), x)


@pytest.mark.parametrize("attention,options", [
    ("full", None), ("window", {"window": 2, "num_global": 1}),
    ("favor", {"num_features": 16, "seed": 1})])
def test_decoder_never_looks_ahead(attention, options):
  lm = transformer.DecoderLM(**SMALL, attention=attention, attention_options=options)
  x = tokens()
  params = init(lm, x)
  t = 5
  changed = x.at[:, t:].set((x[:, t:] + 1) % V)
  out, out2 = lm.apply(params, x), lm.apply(params, changed)
  assert out.shape == (2, L, V)
  np.testing.assert_allclose(out[:, :t], out2[:, :t], atol=1e-4)
  assert not np.allclose(out[:, t:], out2[:, t:], atol=1e-4)


def test_transformer_xl_memory_equals_attention_over_concatenated_segments():
  lm = transformer.DecoderLM(**SMALL)
  x = tokens(1, length=2 * L)
  params = init(lm, x)
  whole = lm.apply(params, x)
  first, mem = lm.apply(params, x[:, :L], None, L, method=lm.with_memory)
  second, mem2 = lm.apply(params, x[:, L:], mem, L, method=lm.with_memory)
  np.testing.assert_allclose(first, whole[:, :L], atol=1e-4)
  np.testing.assert_allclose(second, whole[:, L:], atol=1e-4)
  assert len(mem2) == SMALL["depth"] and mem2[0].shape == (2, L, D)


def test_reversible_block_reconstructs_inputs():
  block = transformer.ReversibleBlock(num_heads=2, mlp_dim=32, causal=True)
  k1, k2 = jax.random.split(jax.random.PRNGKey(2))
  x1, x2 = jax.random.normal(k1, (2, L, D)), jax.random.normal(k2, (2, L, D))
  params = block.init(jax.random.PRNGKey(0), x1, x2)
  y1, y2 = block.apply(params, x1, x2)
  r1, r2 = block.apply(params, y1, y2, method=block.invert)
  np.testing.assert_allclose(r1, x1, atol=1e-4)
  np.testing.assert_allclose(r2, x2, atol=1e-4)
  lm = transformer.DecoderLM(**SMALL, reversible=True)
  assert lm.apply(init(lm, tokens()), tokens()).shape == (2, L, V)


@pytest.mark.parametrize("head,pooling", [("classify", "mean"), ("classify", "cls"),
                                          ("tag", "mean")])
def test_encoder_padding_is_irrelevant(head, pooling):
  pad = V - 1
  enc = transformer.Encoder(**SMALL, num_outputs=3, head=head, pooling=pooling, pad_id=pad,
                            positions="learned", max_len=16)
  x = tokens(3).at[1, 5:].set(pad)
  params = init(enc, x)
  out = enc.apply(params, x)
  shorter = enc.apply(params, x[:, :5])
  if head == "tag":
    assert out.shape == (2, L, 3)
    np.testing.assert_allclose(out[1, :5], shorter[1], atol=1e-4)
  else:
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[1], shorter[1], atol=1e-4)


def test_lm_loss_decreases_over_jitted_steps():
  tok = tokenizers.byte_tokenizer()
  ids, mask = tok.encode_batch(["abcabcabcabcabca", "cabcabcabcabcabc"], add_bos=True)
  model = transformer.lm_model(dict(kind="decoder", seq_len=ids.shape[1],
                                    vocab_size=tok.vocab_size, dim=16, depth=1,
                                    num_heads=2, mlp_dim=32, tie_embeddings=False,
                                    pad_id=tok.pad_id))
  params, state = model.init(jax.random.PRNGKey(0))
  tx = optax.adam(1e-2)
  opt_state = tx.init(params)

  def loss_fn(p):
    logits, _ = model.apply(p, state, jnp.asarray(ids), train=True)
    return transformer.next_token_loss(logits, jnp.asarray(ids), jnp.asarray(mask))

  @jax.jit
  def step(p, o):
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, loss

  losses = []
  for _ in range(15):
    params, opt_state, loss = step(params, opt_state)
    losses.append(float(loss))
  assert losses[-1] < 0.5 * losses[0], losses
