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


REV = dict(num_heads=2, mlp_dim=32, causal=True)


def reversible_losses(depth):
  """The same loss through ``reversible_stack`` and through the blocks chained plainly."""
  block = transformer.ReversibleBlock(**REV)

  def plain(params_seq, x):
    x1 = x2 = x
    for params in params_seq:
      x1, x2 = block.apply({"params": params}, x1, x2)
    return jnp.sum(jnp.sin(x1 + x2))

  def reversible(params_seq, x):
    x1, x2 = transformer.reversible_stack(block, params_seq, x, x)
    return jnp.sum(jnp.sin(x1 + x2))

  def params_and_input(dtype=jnp.float32, length=L, dim=D):
    keys = jax.random.split(jax.random.PRNGKey(3), depth + 1)
    x = jax.random.normal(keys[0], (2, length, dim), dtype)
    params_seq = [jax.tree.map(lambda a: a.astype(dtype), block.init(k, x, x)["params"])
                  for k in keys[1:]]
    return params_seq, x

  return plain, reversible, params_and_input


def test_reversible_backward_matches_autodiff_to_second_order(x64):
  del x64
  plain, reversible, params_and_input = reversible_losses(depth=2)
  params_seq, x = params_and_input(jnp.float64)
  def squared_grad_norm(loss):  # Differentiated again, as in second-order MAML.
    return lambda p, x: optax.tree.norm(jax.grad(loss, (0, 1))(p, x), squared=True)

  for want_fn, got_fn in ((plain, reversible),
                          (squared_grad_norm(plain), squared_grad_norm(reversible))):
    want = jax.grad(want_fn, (0, 1))(params_seq, x)
    got = jax.grad(got_fn, (0, 1))(params_seq, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9),
                 got, want)


def test_reversible_training_memory_does_not_grow_with_depth():
  def temp_mb(loss, depth):
    params_seq, x = reversible_losses(depth)[2](length=64, dim=32)
    compiled = jax.jit(jax.grad(loss[depth])).lower(params_seq, x).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 1e6

  plain = {d: reversible_losses(d)[0] for d in (2, 6)}
  reversible = {d: reversible_losses(d)[1] for d in (2, 6)}
  assert temp_mb(plain, 6) > 2 * temp_mb(plain, 2)  # Autodiff stores every layer.
  assert temp_mb(reversible, 6) < 1.5 * temp_mb(reversible, 2)
  assert temp_mb(reversible, 6) < 0.5 * temp_mb(plain, 6)


def test_reversible_trunk_trains_through_the_stack():
  lm = transformer.DecoderLM(**SMALL, reversible=True)
  x = tokens()
  params = init(lm, x)
  loss = lambda p: transformer.next_token_loss(lm.apply(p, x), x)
  grads = jax.grad(loss)(params)
  assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
  step = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
  assert loss(step) < loss(params)


@pytest.mark.parametrize("name,options", [
    ("full", None), ("lsh", {"num_buckets": 2, "chunk_size": 4, "seed": 0})])
def test_every_attention_parameter_is_used(name, options):
  """LSH shares queries and keys, so its layers have no key projection to leave idle."""
  lm = transformer.DecoderLM(**SMALL, attention=name, attention_options=options)
  x = tokens()
  params = init(lm, x)
  attn = params["params"]["trunk"]["block_0"]["attn"]
  assert ("key" in attn) == (name not in transformer.attention.SHARED_QUERY_KEY)
  grads = jax.grad(lambda p: transformer.next_token_loss(lm.apply(p, x), x))(params)
  assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))


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
