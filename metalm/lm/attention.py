"""Attention mechanisms as pluggable pure functions with one signature.

``attend(q_BxLxHxD, k_BxSxHxD, v_BxSxHxD, *, mask_BxS=None, causal=False, **options)
-> out_BxLxHxD``. ``mask_BxS`` is True on real (non-padding) keys. With ``S > L`` (a
memory of past keys, Transformer-XL) the queries are the last ``L`` positions, so causal
query ``i`` sees keys ``j <= i + S - L``. Options a mechanism does not use are ignored,
so one model config can switch mechanisms by name.
"""

import math

import jax
import jax.numpy as jnp

from metalm import registry

_NEG = -1e30  # finite, so a fully masked row gives a uniform (not NaN) softmax


def _causal_mask_LxS(length: int, key_length: int) -> jax.Array:
  offset = key_length - length
  return jnp.arange(key_length)[None, :] <= jnp.arange(length)[:, None] + offset


def _softmax_attend(scores_BxHxLxS, allowed, v_BxSxHxD):
  scores_BxHxLxS = jnp.where(allowed, scores_BxHxLxS, _NEG)
  weights_BxHxLxS = jax.nn.softmax(scores_BxHxLxS, axis=-1)
  return jnp.einsum("bhls,bshd->blhd", weights_BxHxLxS, v_BxSxHxD)


def full(q_BxLxHxD, k_BxSxHxD, v_BxSxHxD, *, mask_BxS=None, causal=False, **_):
  """Exact softmax attention, O(L * S) memory.

  Reference: Vaswani et al., 2017, arXiv:1706.03762.
  """
  length, key_length, depth = q_BxLxHxD.shape[1], k_BxSxHxD.shape[1], q_BxLxHxD.shape[-1]
  scores_BxHxLxS = jnp.einsum("blhd,bshd->bhls", q_BxLxHxD, k_BxSxHxD) / math.sqrt(depth)
  allowed = jnp.ones((1, 1, length, key_length), bool)
  if causal:
    allowed = allowed & _causal_mask_LxS(length, key_length)[None, None]
  if mask_BxS is not None:
    allowed = allowed & mask_BxS[:, None, None, :]
  return _softmax_attend(scores_BxHxLxS, allowed, v_BxSxHxD)


def window_reference_mask_BxLxL(length, *, window, num_global=0, mask_BxL=None,
                                causal=False):
  """The dense mask that ``sliding_window`` computes in blocks (for tests)."""
  pos = jnp.arange(length)
  diff_LxL = pos[:, None] - pos[None, :]
  band = (jnp.abs(diff_LxL) <= window) | (pos[None, :] < num_global)
  band = band | (pos[:, None] < num_global)
  if causal:
    band = band & (diff_LxL >= 0)
  band = band[None]
  if mask_BxL is not None:
    band = band & mask_BxL[:, None, :]
  return band


def sliding_window_dense(q_BxLxHxD, k_BxLxHxD, v_BxLxHxD, *, mask_BxS=None, causal=False,
                         window=64, num_global=0, **_):
  """Dense-masked reference for ``sliding_window`` (O(L^2) memory)."""
  length, depth = q_BxLxHxD.shape[1], q_BxLxHxD.shape[-1]
  scores_BxHxLxL = jnp.einsum("blhd,bshd->bhls", q_BxLxHxD, k_BxLxHxD) / math.sqrt(depth)
  allowed = window_reference_mask_BxLxL(length, window=window, num_global=num_global,
                                        mask_BxL=mask_BxS, causal=causal)
  return _softmax_attend(scores_BxHxLxL, allowed[:, None], v_BxLxHxD)


def sliding_window(q_BxLxHxD, k_BxLxHxD, v_BxLxHxD, *, mask_BxS=None, causal=False,
                   window=64, num_global=0, **_):
  """Sliding-window attention with global tokens, computed in blocks.

  Each query sees keys at most ``window`` positions away (only earlier ones when causal);
  the first ``num_global`` positions are global: they see every key and every query sees
  them. Queries are cut into blocks of ``window``; each block scores its own and the two
  neighbouring key blocks plus the global keys, so memory is O(L * (3 * window +
  num_global)). Self-attention only (``S == L``).

  Reference: Beltagy, Peters & Cohan, 2020, arXiv:2004.05150 (Longformer).
  """
  batch, length, heads, depth = q_BxLxHxD.shape
  if k_BxLxHxD.shape[1] != length:
    raise ValueError("sliding_window attention needs as many keys as queries.")
  w = max(1, min(window, length))
  blocks = -(-length // w)
  padded = blocks * w
  if mask_BxS is None:
    mask_BxS = jnp.ones((batch, length), bool)

  def pad(x, before, after):
    widths = [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2)
    return jnp.pad(x, widths)

  def neighbours(x):  # (B, padded, ...) -> (B, blocks, 3w, ...): blocks c-1, c, c+1
    x = pad(x, w, padded - length + w).reshape((batch, blocks + 2, w) + x.shape[2:])
    return jnp.concatenate([x[:, :-2], x[:, 1:-1], x[:, 2:]], axis=2)

  q_BxNxWxHxD = pad(q_BxLxHxD, 0, padded - length).reshape(batch, blocks, w, heads, depth)
  k_BxNxKxHxD, v_BxNxKxHxD = neighbours(k_BxLxHxD), neighbours(v_BxLxHxD)
  valid_BxNxK = neighbours(mask_BxS)
  q_pos_NxW = jnp.arange(padded).reshape(blocks, w)
  k_pos_NxK = (jnp.arange(blocks)[:, None] - 1) * w + jnp.arange(3 * w)[None, :]
  diff_NxWxK = q_pos_NxW[:, :, None] - k_pos_NxK[:, None, :]
  band_NxWxK = (jnp.abs(diff_NxWxK) <= window) & (k_pos_NxK[:, None, :] >= num_global)
  if causal:
    band_NxWxK = band_NxWxK & (diff_NxWxK >= 0)
  allowed_BxNxWxK = band_NxWxK[None] & valid_BxNxK[:, :, None, :]
  scale = 1.0 / math.sqrt(depth)
  local_BxNxHxWxK = jnp.einsum("bnwhd,bnkhd->bnhwk", q_BxNxWxHxD, k_BxNxKxHxD) * scale
  local_BxNxHxWxK = jnp.where(allowed_BxNxWxK[:, :, None], local_BxNxHxWxK, _NEG)
  scores, values = [local_BxNxHxWxK], [v_BxNxKxHxD]
  if num_global:
    g_k_BxGxHxD, g_v_BxGxHxD = k_BxLxHxD[:, :num_global], v_BxLxHxD[:, :num_global]
    g_scores_BxNxHxWxG = jnp.einsum("bnwhd,bghd->bnhwg", q_BxNxWxHxD, g_k_BxGxHxD) * scale
    g_allowed_BxNxWxG = mask_BxS[:, None, None, :num_global]
    if causal:
      g_allowed_BxNxWxG = g_allowed_BxNxWxG & (
          jnp.arange(num_global)[None, None, None, :] <= q_pos_NxW[None, :, :, None])
    g_scores_BxNxHxWxG = jnp.where(g_allowed_BxNxWxG[:, :, None], g_scores_BxNxHxWxG, _NEG)
    scores.append(g_scores_BxNxHxWxG)
    values.append(jnp.broadcast_to(g_v_BxGxHxD[:, None],
                                   (batch, blocks) + g_v_BxGxHxD.shape[1:]))
  weights = jax.nn.softmax(jnp.concatenate(scores, axis=-1), axis=-1)
  out_BxNxWxHxD = jnp.einsum("bnhwk,bnkhd->bnwhd", weights, jnp.concatenate(values, 2))
  out_BxLxHxD = out_BxNxWxHxD.reshape(batch, padded, heads, depth)[:, :length]
  if num_global:  # global queries see every key: O(num_global * L)
    g_out = full(q_BxLxHxD[:, :num_global], k_BxLxHxD, v_BxLxHxD, mask_BxS=mask_BxS)
    if causal:  # global query g < num_global then sees only keys 0..g
      g_out = full(q_BxLxHxD[:, :num_global], k_BxLxHxD[:, :num_global],
                   v_BxLxHxD[:, :num_global], mask_BxS=mask_BxS[:, :num_global],
                   causal=True)
    out_BxLxHxD = out_BxLxHxD.at[:, :num_global].set(g_out)
  return out_BxLxHxD


def orthogonal_features_MxD(key, num_features: int, depth: int) -> jax.Array:
  """Orthogonal Gaussian projections: orthogonal blocks with chi-distributed row norms."""
  blocks = -(-num_features // depth)
  block_key, norm_key = jax.random.split(key)
  gaussian = jax.random.normal(block_key, (blocks, depth, depth))
  q_NxDxD, _ = jnp.linalg.qr(gaussian)
  rows_MxD = jnp.swapaxes(q_NxDxD, 1, 2).reshape(blocks * depth, depth)[:num_features]
  norms_M = jnp.linalg.norm(jax.random.normal(norm_key, (num_features, depth)), axis=-1)
  return rows_MxD * norms_M[:, None]


def favor(q_BxLxHxD, k_BxSxHxD, v_BxSxHxD, *, mask_BxS=None, causal=False,
          num_features=256, key=None, chunk_size=64, **_):
  """FAVOR+ linear attention with positive orthogonal random features.

  Approximates softmax attention by ``phi(q) (phi(k)^T v)`` with
  ``phi(x) = exp(w^T x - |x|^2 / 2) / sqrt(M)``. ``key`` draws the features (a fixed key
  if None). Causal attention runs over chunks of ``chunk_size`` keys
  (``_causal_linear_attention``): O(L * M) memory, every query's stabilizer from the keys
  it may see. With S > L keys (a memory), the queries are the last L key positions.

  Reference: Choromanski et al., 2021, arXiv:2009.14794 (Performer).
  """
  depth = q_BxLxHxD.shape[-1]
  key = jax.random.PRNGKey(0) if key is None else key
  w_MxD = orthogonal_features_MxD(key, num_features, depth).astype(q_BxLxHxD.dtype)
  scale = depth ** -0.25

  def projections(x_BxLxHxD):
    x_BxLxHxD = x_BxLxHxD * scale
    proj_BxLxHxM = jnp.einsum("blhd,md->blhm", x_BxLxHxD, w_MxD)
    return proj_BxLxHxM - 0.5 * jnp.sum(x_BxLxHxD ** 2, -1, keepdims=True)

  def exp_features(proj, stab):  # stab: a constant that cancels in the ratio
    return jnp.exp(proj - jax.lax.stop_gradient(stab)) / math.sqrt(num_features)

  q_proj_BxLxHxM = projections(q_BxLxHxD)
  phi_q_BxLxHxM = exp_features(q_proj_BxLxHxM, jnp.max(q_proj_BxLxHxM, -1, keepdims=True))
  k_proj_BxSxHxM = projections(k_BxSxHxD)
  if mask_BxS is None:
    mask_BxS = jnp.ones(k_BxSxHxD.shape[:2], bool)
  k_proj_BxSxHxM = jnp.where(mask_BxS[:, :, None, None], k_proj_BxSxHxM, _NEG)
  if causal:
    return _causal_linear_attention(phi_q_BxLxHxM, k_proj_BxSxHxM, v_BxSxHxD, mask_BxS,
                                    chunk_size, 1.0 / math.sqrt(num_features))
  # Bidirectional: keys share one stabilizer, the max over all keys and features.
  key_stab = jnp.max(k_proj_BxSxHxM, axis=(1, 3), keepdims=True)
  phi_k_BxSxHxM = exp_features(k_proj_BxSxHxM, key_stab) * mask_BxS[:, :, None, None]
  kv_BxHxMxD = jnp.einsum("bshm,bshd->bhmd", phi_k_BxSxHxM, v_BxSxHxD)
  num_BxLxHxD = jnp.einsum("blhm,bhmd->blhd", phi_q_BxLxHxM, kv_BxHxMxD)
  den_BxLxH = jnp.einsum("blhm,bhm->blh", phi_q_BxLxHxM, phi_k_BxSxHxM.sum(1))
  return num_BxLxHxD / (den_BxLxH[..., None] + 1e-30)


def _causal_linear_attention(phi_q_BxLxHxM, k_proj_BxSxHxM, v_BxSxHxD, mask_BxS, chunk,
                             feature_scale):
  """``sum_{s<=i} phi(q_i).phi(k_s) v_s / sum_{s<=i} phi(q_i).phi(k_s)`` in chunks.

  Key features are ``exp(k_proj - c_i)`` with ``c_i`` the running max of the key
  projections up to query ``i``: it cancels in the ratio, bounds every feature by 1 (no
  overflow; a key far below the running max underflows, as its weight is negligible)
  and reads no later key, so outputs never depend on the future. A scan carries the
  prefix sums of earlier chunks (rescaled as the running max grows); inside a chunk the
  masked C x C products are computed directly, so memory is O(L * M + L * C) rather
  than the O(L * M * D) of a prefix sum over outer products.
  """
  batch, length, heads, _ = phi_q_BxLxHxM.shape
  key_length = k_proj_BxSxHxM.shape[1]
  stab_BxSxH = jax.lax.stop_gradient(jax.lax.cummax(jnp.max(k_proj_BxSxHxM, -1), axis=1))
  phi_k_BxSxHxM = (jnp.exp(k_proj_BxSxHxM - stab_BxSxH[..., None]) * feature_scale
                   * mask_BxS[:, :, None, None])
  # Queries sit at the last L of the S key positions.
  phi_q_BxSxHxM = jnp.pad(phi_q_BxLxHxM, ((0, 0), (key_length - length, 0), (0, 0), (0, 0)))
  chunk = max(1, min(chunk, key_length))
  padded = -(-key_length // chunk) * chunk
  extra = padded - key_length

  def chunks(x, mode="constant"):  # [B, S, ...] -> [N, B, C, ...]
    x = jnp.pad(x, ((0, 0), (0, extra)) + ((0, 0),) * (x.ndim - 2), mode=mode)
    x = x.reshape((batch, padded // chunk, chunk) + x.shape[2:])
    return jnp.moveaxis(x, 1, 0)

  xs = (chunks(phi_q_BxSxHxM), chunks(phi_k_BxSxHxM), chunks(v_BxSxHxD),
        chunks(stab_BxSxH, mode="edge"))
  causal_CxC = jnp.tril(jnp.ones((chunk, chunk), bool))

  def step(carry, x):
    kv_BxHxMxD, norm_BxHxM, last_BxH = carry
    q_BxCxHxM, k_BxCxHxM, v_BxCxHxD, stab_BxCxH = x
    # Earlier chunks, rescaled from the previous running max to each query's.
    decay_BxCxH = jnp.exp(last_BxH[:, None] - stab_BxCxH)
    num = jnp.einsum("bchm,bhmd->bchd", q_BxCxHxM, kv_BxHxMxD) * decay_BxCxH[..., None]
    den = jnp.einsum("bchm,bhm->bch", q_BxCxHxM, norm_BxHxM) * decay_BxCxH
    # This chunk: key j's features rescaled to query i's max (j <= i, so at most 1).
    gap_BxHxCxC = (jnp.swapaxes(stab_BxCxH, 1, 2)[..., None, :]
                   - jnp.swapaxes(stab_BxCxH, 1, 2)[..., :, None])
    weights_BxHxCxC = jnp.where(causal_CxC, jnp.exp(jnp.minimum(gap_BxHxCxC, 0.0)), 0.0)
    scores_BxHxCxC = jnp.einsum("bihm,bjhm->bhij", q_BxCxHxM, k_BxCxHxM) * weights_BxHxCxC
    num = num + jnp.einsum("bhij,bjhd->bihd", scores_BxHxCxC, v_BxCxHxD)
    den = den + jnp.swapaxes(scores_BxHxCxC.sum(-1), 1, 2)
    # Carry the sums to the end of this chunk, at its running max.
    new_BxH = stab_BxCxH[:, -1]
    carry_decay_BxH = jnp.exp(last_BxH - new_BxH)
    to_end_BxCxH = jnp.exp(stab_BxCxH - new_BxH[:, None])
    k_end_BxCxHxM = k_BxCxHxM * to_end_BxCxH[..., None]
    kv_BxHxMxD = (kv_BxHxMxD * carry_decay_BxH[..., None, None]
                  + jnp.einsum("bchm,bchd->bhmd", k_end_BxCxHxM, v_BxCxHxD))
    norm_BxHxM = norm_BxHxM * carry_decay_BxH[..., None] + k_end_BxCxHxM.sum(1)
    return (kv_BxHxMxD, norm_BxHxM, new_BxH), (num, den)

  num_features, depth = phi_q_BxLxHxM.shape[-1], v_BxSxHxD.shape[-1]
  init = (jnp.zeros((batch, heads, num_features, depth), v_BxSxHxD.dtype),
          jnp.zeros((batch, heads, num_features), v_BxSxHxD.dtype), stab_BxSxH[:, 0])
  _, (num_NxBxCxHxD, den_NxBxCxH) = jax.lax.scan(step, init, xs)
  num_BxSxHxD = jnp.moveaxis(num_NxBxCxHxD, 0, 1).reshape(batch, padded, heads, depth)
  den_BxSxH = jnp.moveaxis(den_NxBxCxH, 0, 1).reshape(batch, padded, heads)
  out_BxSxHxD = num_BxSxHxD / (den_BxSxH[..., None] + 1e-30)
  return out_BxSxHxD[:, key_length - length:key_length]


def lsh(q_BxLxHxD, k_BxLxHxD, v_BxLxHxD, *, mask_BxS=None, causal=False, num_buckets=8,
        num_rounds=1, chunk_size=32, mask_self=True, key=None, **_):
  """LSH bucketed attention with shared queries and keys (``k`` is ignored).

  Keys are the unit-normalized queries. Each round hashes them with a random rotation
  (``argmax([xR, -xR])``), sorts positions by bucket, cuts the sorted order into chunks
  of ``chunk_size`` and lets each chunk attend to itself and the chunk before, only
  within the same bucket (a length that is not a multiple of ``chunk_size`` is padded
  with masked positions). Rounds are combined by their log-normalizers, discounting
  keys found in several rounds. With ``mask_self`` a token attends to itself only when
  nothing else is allowed (its shared-QK score would dominate).

  Reference: Kitaev, Kaiser & Levskaya, 2020, arXiv:2001.04451 (Reformer).
  """
  batch, length, heads, depth = q_BxLxHxD.shape
  if v_BxLxHxD.shape[1] != length or (k_BxLxHxD is not None
                                      and k_BxLxHxD.shape[1] != length):
    raise ValueError(f"lsh attention shares queries and keys, so it needs as many keys as "
                     f"queries; got {length} queries and {v_BxLxHxD.shape[1]} keys (a "
                     f"Transformer-XL memory?). Use full, window or favor attention "
                     f"with a memory.")
  del k_BxLxHxD
  if num_buckets != 1 and num_buckets % 2:
    raise ValueError(f"num_buckets must be 1 or even, got {num_buckets}.")
  key = jax.random.PRNGKey(0) if key is None else key
  chunk = min(chunk_size, length)
  if mask_BxS is None:
    mask_BxS = jnp.ones((batch, length), bool)
  if length % chunk:  # Pad to whole chunks with masked positions; they see nothing real.
    extra = chunk - length % chunk
    pad = lambda x: jnp.pad(x, ((0, 0), (0, extra)) + ((0, 0),) * (x.ndim - 2))
    out_BxPxHxD = lsh(pad(q_BxLxHxD), None, pad(v_BxLxHxD), mask_BxS=pad(mask_BxS),
                      causal=causal, num_buckets=num_buckets, num_rounds=num_rounds,
                      chunk_size=chunk, mask_self=mask_self, key=key)
    return out_BxPxHxD[:, :length]
  chunks = length // chunk
  q_BxHxLxD = jnp.swapaxes(q_BxLxHxD, 1, 2)
  v_BxHxLxD = jnp.swapaxes(v_BxLxHxD, 1, 2)
  k_BxHxLxD = q_BxHxLxD / (jnp.linalg.norm(q_BxHxLxD, axis=-1, keepdims=True) + 1e-6)

  rot_RxDxN = jax.random.normal(key, (num_rounds, depth, max(1, num_buckets // 2)),
                                q_BxLxHxD.dtype)
  rotated_BxHxRxLxN = jnp.einsum("bhld,rdn->bhrln", k_BxHxLxD, rot_RxDxN)
  buckets_BxHxRxL = jnp.argmax(
      jnp.concatenate([rotated_BxHxRxLxN, -rotated_BxHxRxLxN], -1), -1)
  if num_buckets == 1:
    buckets_BxHxRxL = jnp.zeros_like(buckets_BxHxRxL)
  pos_L = jnp.arange(length)
  perm_BxHxRxL = jnp.argsort(buckets_BxHxRxL * length + pos_L[None, None, None, :],
                             axis=-1)
  unperm_BxHxRxL = jnp.argsort(perm_BxHxRxL, axis=-1)

  def gather(x_BxHxLxD):  # sorted copies per round: (B, H, R, L, D)
    return jnp.take_along_axis(x_BxHxLxD[:, :, None], perm_BxHxRxL[..., None], axis=3)

  def look_back(x):  # (B, H, R, C, W, ...) -> (B, H, R, C, W or 2W, ...)
    if chunks == 1:
      return x
    return jnp.concatenate([x, jnp.roll(x, 1, axis=3)], axis=4)

  shape = (batch, heads, num_rounds, chunks, chunk)
  sq = gather(q_BxHxLxD).reshape(shape + (depth,))
  sk = look_back(gather(k_BxHxLxD).reshape(shape + (depth,)))
  sv = look_back(gather(v_BxHxLxD).reshape(shape + (depth,)))
  q_pos = perm_BxHxRxL.reshape(shape)
  k_pos = look_back(q_pos)
  # Buckets of every sorted position in every round, to count shared rounds.
  all_buckets_BxHxLxR = jnp.swapaxes(buckets_BxHxRxL, 2, 3)
  pos_buckets = jnp.take_along_axis(
      all_buckets_BxHxLxR[:, :, None], perm_BxHxRxL[..., None], axis=3
  ).reshape(shape + (num_rounds,))
  q_buckets, k_buckets = pos_buckets, look_back(pos_buckets)

  scores = jnp.einsum("bhrcwd,bhrckd->bhrcwk", sq, sk) / math.sqrt(depth)
  shared_rounds = jnp.sum(q_buckets[..., :, None, :] == k_buckets[..., None, :, :], -1)
  round_buckets = jnp.take_along_axis(buckets_BxHxRxL, perm_BxHxRxL, axis=-1).reshape(shape)
  allowed = round_buckets[..., :, None] == look_back(round_buckets)[..., None, :]
  if causal:
    allowed = allowed & (k_pos[..., None, :] <= q_pos[..., :, None])
  key_valid = jnp.take_along_axis(
      jnp.broadcast_to(mask_BxS[:, None, None, :], (batch, heads, num_rounds, length)),
      perm_BxHxRxL, axis=-1).reshape(shape)
  allowed = allowed & look_back(key_valid)[..., None, :]
  scores = scores - jnp.log(jnp.maximum(shared_rounds, 1).astype(scores.dtype))
  scores = jnp.where(allowed, scores, _NEG)
  if mask_self:
    scores = jnp.where(k_pos[..., None, :] == q_pos[..., :, None], -1e5, scores)
  lse = jax.nn.logsumexp(scores, axis=-1, keepdims=True)
  out = jnp.einsum("bhrcwk,bhrckd->bhrcwd", jnp.exp(scores - lse), sv)

  def unsort(x):  # (B, H, R, C, W, X) -> (B, H, R, L, X)
    x = x.reshape((batch, heads, num_rounds, length, x.shape[-1]))
    return jnp.take_along_axis(x, unperm_BxHxRxL[..., None], axis=3)

  out_BxHxRxLxD, lse_BxHxRxLx1 = unsort(out), unsort(lse)
  round_weights = jax.nn.softmax(lse_BxHxRxLx1, axis=2)
  out_BxHxLxD = jnp.sum(out_BxHxRxLxD * round_weights, axis=2)
  return jnp.swapaxes(out_BxHxLxD, 1, 2)


ATTENTIONS = {
    "full": full,
    "window": sliding_window,
    "window_dense": sliding_window_dense,
    "favor": favor,
    "lsh": lsh,
}

# Attentions whose keys are the queries (a layer using one needs no key projection).
SHARED_QUERY_KEY = frozenset({"lsh"})


def get(name: str):
  """The attention function registered under ``name``."""
  return registry.lookup("attention", name, ATTENTIONS)
