"""Tests for metalm.lm.attention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalm.lm import attention

B, L, H, D = 2, 12, 2, 8


def qkv(seed=0, length=L, scale=1.0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 3)
  return tuple(scale * jax.random.normal(k, (B, length, H, D)) for k in keys)


def padding_mask_BxL(length=L):
  return jnp.arange(length)[None, :] < jnp.array([[length], [length - 4]])


def test_registry_names_every_mechanism():
  assert set(attention.ATTENTIONS) >= {"full", "window", "favor", "lsh"}
  with pytest.raises(ValueError, match="Did you mean"):
    attention.get("ful")


@pytest.mark.parametrize("causal", [False, True])
def test_window_longer_than_sequence_equals_full(causal):
  q, k, v = qkv()
  mask = padding_mask_BxL()
  want = attention.full(q, k, v, mask_BxS=mask, causal=causal)
  got = attention.sliding_window(q, k, v, mask_BxS=mask, causal=causal, window=L)
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window,num_global", [(1, 0), (3, 0), (2, 2), (5, 1)])
def test_chunked_window_equals_dense_reference(causal, window, num_global):
  q, k, v = qkv(1, length=13)
  mask = padding_mask_BxL(13)
  kw = dict(mask_BxS=mask, causal=causal, window=window, num_global=num_global)
  want = attention.sliding_window_dense(q, k, v, **kw)
  got = attention.sliding_window(q, k, v, **kw)
  real = mask[:, :, None, None]  # padded queries see no key; their rows are arbitrary
  np.testing.assert_allclose(jnp.where(real, got, 0.0), jnp.where(real, want, 0.0),
                             atol=1e-5)


def favor_error(num_features, causal):
  q, k, v = qkv(2, scale=0.5)
  exact = attention.full(q, k, v, causal=causal)
  errors = []
  for seed in range(4):
    approx = attention.favor(q, k, v, causal=causal, num_features=num_features,
                             key=jax.random.PRNGKey(seed))
    errors.append(jnp.mean(jnp.abs(approx - exact)))
  return float(np.mean(errors))


@pytest.mark.parametrize("causal", [False, True])
def test_favor_error_shrinks_with_more_features(causal):
  small, large = favor_error(16, causal), favor_error(256, causal)
  assert large < 0.6 * small, (small, large)


def test_causal_favor_does_not_depend_on_the_chunk_size():
  """One key per chunk (all carried state), all keys in one chunk (all C x C products)
  and chunks that do not divide L give the same outputs, with padding and with more
  keys than queries (a Transformer-XL memory)."""
  q, k, v = qkv(5, scale=0.7)
  mask = padding_mask_BxL()
  for queries in (q, q[:, 4:]):
    outs = [attention.favor(queries, k, v, mask_BxS=mask, causal=True, num_features=32,
                            chunk_size=c) for c in (1, 5, L)]
    for out in outs[1:]:
      np.testing.assert_allclose(out, outs[0], rtol=1e-4, atol=1e-5)
  # The queries of a memory are the last L key positions.
  np.testing.assert_allclose(
      attention.favor(q[:, 4:], k, v, causal=True, num_features=32, chunk_size=5),
      attention.favor(q, k, v, causal=True, num_features=32, chunk_size=5)[:, 4:],
      rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_favor_converges_at_wide_heads(causal):
  """Head size 128: the causal stabilizer follows the keys, so features do not underflow
  (a fixed worst-case bound made every output 0 here) and the error still shrinks with
  the number of features."""
  keys = jax.random.split(jax.random.PRNGKey(6), 3)
  q, k, v = (0.5 * jax.random.normal(key, (1, 64, 2, 128)) for key in keys)
  exact = attention.full(q, k, v, causal=causal)
  errors = []
  for num_features in (64, 1024):
    approx = attention.favor(q, k, v, causal=causal, num_features=num_features)
    assert np.all(np.abs(np.asarray(approx)).sum(-1) > 0)
    errors.append(float(jnp.linalg.norm(approx - exact) / jnp.linalg.norm(exact)))
  assert errors[1] < 0.7 * errors[0], errors


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("rounds", [1, 3])
def test_lsh_one_bucket_equals_shared_qk_full_attention(causal, rounds):
  q, _, v = qkv(3)
  mask = padding_mask_BxL()
  k = q / (jnp.linalg.norm(q, axis=-1, keepdims=True) + 1e-6)
  want = attention.full(q, k, v, mask_BxS=mask, causal=causal)
  got = attention.lsh(q, None, v, mask_BxS=mask, causal=causal, num_buckets=1,
                      num_rounds=rounds, chunk_size=L, mask_self=False)
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_lsh_pads_a_length_that_is_not_a_multiple_of_the_chunk(causal):
  """L = 12 with chunks of 8 runs as two chunks of 8, the last 4 positions masked; with
  one bucket, every query's own and previous chunk cover every real key it may see."""
  q, _, v = qkv(8)
  mask = padding_mask_BxL()
  k = q / (jnp.linalg.norm(q, axis=-1, keepdims=True) + 1e-6)
  want = attention.full(q, k, v, mask_BxS=mask, causal=causal)
  got = attention.lsh(q, None, v, mask_BxS=mask, causal=causal, num_buckets=1,
                      chunk_size=8, mask_self=False)
  assert got.shape == q.shape
  real = mask[:, :, None, None]
  np.testing.assert_allclose(jnp.where(real, got, 0.0), jnp.where(real, want, 0.0),
                             atol=1e-5)


def test_lsh_many_buckets_and_chunks_is_finite_and_masks_self():
  q, _, v = qkv(4)
  out = attention.lsh(q, None, v, num_buckets=4, num_rounds=2, chunk_size=4,
                      key=jax.random.PRNGKey(1))
  assert out.shape == (B, L, H, D) and bool(jnp.all(jnp.isfinite(out)))
  # Alone in its bucket and chunk, a token falls back to attending to itself.
  single = attention.lsh(q[:, :1], None, v[:, :1], num_buckets=2, chunk_size=1)
  np.testing.assert_allclose(single, v[:, :1], atol=1e-5)


CAUSAL = {
    "full": dict(),
    "window": dict(window=3, num_global=1),
    "favor": dict(num_features=32),
    "lsh": dict(num_buckets=4, num_rounds=2, chunk_size=4),
}


@pytest.mark.parametrize("name", sorted(CAUSAL))
def test_causal_never_looks_ahead(name):
  fn = attention.get(name)
  q, k, v = qkv(5)
  t = 7
  q2, k2, v2 = (x.at[:, t:].set(x[:, t:] + 3.0) for x in (q, k, v))
  out = fn(q, k, v, causal=True, **CAUSAL[name])
  out2 = fn(q2, k2, v2, causal=True, **CAUSAL[name])
  if name == "lsh":  # later keys can move earlier ones across chunk borders; with one
    # bucket and one chunk the causal mask alone decides what is seen.
    kw = dict(num_buckets=1, chunk_size=L)
    out, out2 = fn(q, k, v, causal=True, **kw), fn(q2, k2, v2, causal=True, **kw)
  np.testing.assert_allclose(out[:, :t], out2[:, :t], atol=1e-5)
  assert not np.allclose(out[:, t:], out2[:, t:], atol=1e-3)


@pytest.mark.parametrize("name", sorted(CAUSAL))
@pytest.mark.parametrize("causal", [False, True])
def test_padded_positions_are_irrelevant(name, causal):
  fn = attention.get(name)
  q, k, v = qkv(6)
  mask = padding_mask_BxL()
  noise = jnp.where(mask[:, :, None, None], 0.0, 5.0)
  kw = dict(CAUSAL[name])
  if name == "lsh":  # padded queries must not change hashing of the real ones
    kw = dict(num_buckets=1, num_rounds=2, chunk_size=L)
  out = fn(q, k, v, mask_BxS=mask, causal=causal, **kw)
  out2 = fn(q + noise, k + noise, v + noise, mask_BxS=mask, causal=causal, **kw)
  np.testing.assert_allclose(jnp.where(mask[:, :, None, None], out, 0.0),
                             jnp.where(mask[:, :, None, None], out2, 0.0), atol=1e-5)


def test_lsh_refuses_more_keys_than_queries():
  q, k, v = qkv(7)
  with pytest.raises(ValueError, match="as many keys as queries; got 8 queries and 12"):
    attention.lsh(q[:, 4:], k, v, chunk_size=4)
