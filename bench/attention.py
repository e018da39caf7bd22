"""Training throughput and memory of the attention variants against sequence length.

  python bench/attention.py [--variants full,window,favor,lsh,xl,reversible]
      [--lengths 256,512,1024,2048,4096,8192] [--mode model|attention]
      [--dim 64 --heads 2 --depth 1 --batch 1] [--windows 3 --tokens_per_window 16384]
      [--memory_cap_mb 2048] [--quick]

``--mode model`` (default) times one training step (forward + backward + Adam) of a
small causal ``DecoderLM`` (rotary positions, tied embeddings, byte vocabulary) whose only
difference between rows is the attention: so with one layer the rows differ by the
attention layer's cost, on top of a shared embedding / MLP / softmax-output cost that is
linear in the length. ``--mode attention`` times the causal attention function alone:
forward + backward of ``sum(out^2)`` with respect to q, k, v and an SGD update of them.

Variants (``metalm.lm.attention`` and ``metalm.lm.transformer``):
  full        exact softmax attention, O(L^2) scores.
  window      Longformer sliding window (``--window``) plus ``--num_global`` global tokens.
  favor       Performer FAVOR+ with ``--num_features`` positive orthogonal random features
              (causal: prefix sums, O(L * M * D) memory).
  lsh         Reformer LSH attention (``--lsh_buckets`` buckets, ``--lsh_chunk`` chunks,
              ``--lsh_rounds`` rounds, shared queries and keys).
  xl          Transformer-XL segment recurrence: the sequence in segments of
              ``--segment`` tokens, each attending (full, causal) to itself and a memory of
              the previous segment's hidden states (gradients stopped), scanned.
  reversible  full attention in reversible blocks (Reformer), whose backward pass
              rebuilds each block's inputs instead of storing them: the saving grows
              with ``--depth``.

The cost is compiled ahead (compile seconds and the compiled step's memory analysis, in
MB, are reported), one warm-up window is run, then ``--windows`` windows of
``--tokens_per_window`` tokens each (rounded to whole steps; ``--steps`` fixes the step
count) are timed; steps/s median / min / max and the same as tokens/s. A combination whose
estimated attention working set (e.g. ``B * H * L * L * 4`` bytes of scores for full
attention) exceeds ``--memory_cap_mb`` prints a ``"skipped"`` line instead of running.
One JSON line per (variant, length) via ``harness.report``.
"""

import argparse
import json
import sys

import jax
import jax.numpy as jnp
import optax

from metalm.lm import attention, transformer

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import harness  # noqa: E402  (bench/harness.py)

VARIANTS = ("full", "window", "favor", "lsh", "xl", "reversible")
VOCAB = 256


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--lengths", default=None,
                      help="comma-separated (default 256,...,8192; 64,128 with --quick)")
  parser.add_argument("--mode", choices=("model", "attention"), default="model")
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--heads", type=int, default=2)
  parser.add_argument("--depth", type=int, default=1)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--window", type=int, default=256)
  parser.add_argument("--num_global", type=int, default=4)
  parser.add_argument("--num_features", type=int, default=128)
  parser.add_argument("--lsh_buckets", type=int, default=16)
  parser.add_argument("--lsh_chunk", type=int, default=64)
  parser.add_argument("--lsh_rounds", type=int, default=1)
  parser.add_argument("--segment", type=int, default=256)
  parser.add_argument("--windows", type=int, default=3)
  parser.add_argument("--tokens_per_window", type=int, default=16384)
  parser.add_argument("--steps", type=int, default=0, help="steps per window (0: from "
                      "--tokens_per_window)")
  parser.add_argument("--memory_cap_mb", type=float, default=2048.0)
  parser.add_argument("--quick", action="store_true",
                      help="lengths 64,128, 1 window x 2 steps, small window / segment / "
                      "chunk so every code path runs (for tests)")
  args = parser.parse_args(argv)
  if args.quick:
    args.lengths, args.windows, args.steps = args.lengths or "64,128", 1, 2
    args.window, args.num_global, args.num_features = 16, 2, 16
    args.lsh_buckets, args.lsh_chunk, args.segment = 4, 16, 32
  args.lengths = args.lengths or "256,512,1024,2048,4096,8192"
  args.variants = [v for v in args.variants.split(",") if v]
  unknown = set(args.variants) - set(VARIANTS)
  if unknown:
    parser.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
  args.lengths = [int(n) for n in args.lengths.split(",") if n]
  return args


def attention_setup(variant, length, args):
  """(attention name, options, reversible, XL segment or 0) for one variant."""
  if variant in ("full", "reversible"):
    return "full", {}, variant == "reversible", 0
  if variant == "window":
    return "window", {"window": args.window, "num_global": args.num_global}, False, 0
  if variant == "favor":
    return "favor", {"num_features": args.num_features, "seed": 0}, False, 0
  if variant == "lsh":
    return "lsh", {"num_buckets": args.lsh_buckets, "chunk_size": args.lsh_chunk,
                   "num_rounds": args.lsh_rounds, "seed": 0}, False, 0
  return "full", {}, False, min(args.segment, length)


def estimate_mb(variant, length, args) -> float:
  """The attention's largest per-layer working set (scores or random features), MB."""
  b, h = args.batch, args.heads
  if variant in ("full", "reversible"):
    elems = b * h * length * length
  elif variant == "window":
    w = min(args.window, length)
    elems = b * h * (-(-length // w) * w) * (3 * w + args.num_global)
  elif variant == "favor":  # features of every key and a chunk's 64 x 64 scores
    elems = b * length * h * (args.num_features + min(64, length))
  elif variant == "lsh":
    chunk = min(args.lsh_chunk, length)
    elems = b * h * args.lsh_rounds * length * (chunk if chunk == length else 2 * chunk)
  else:
    seg = min(args.segment, length)
    elems = b * h * length * 2 * seg
  return elems * 4 / 2**20


def _xl_segments(tokens_BxL, seg):
  batch, length = tokens_BxL.shape
  return jnp.swapaxes(tokens_BxL.reshape(batch, length // seg, seg), 0, 1)  # N x B x seg


def model_step_and_state(variant, length, args):
  """``step(state, tokens) -> (state, loss)``, the initial state and the tokens."""
  name, options, reversible, seg = attention_setup(variant, length, args)
  if seg and length % seg:
    raise ValueError(f"length {length} is not a multiple of --segment {seg}")
  lm = transformer.DecoderLM(VOCAB, dim=args.dim, depth=args.depth, num_heads=args.heads,
                             attention=name, attention_options=options or None,
                             reversible=reversible)
  tokens = jax.random.randint(jax.random.key(1), (args.batch, length), 0, VOCAB)
  params = lm.init(jax.random.key(0), tokens[:, :seg or length])
  tx = optax.adam(1e-3)

  def loss_fn(params, tokens):
    if not seg:
      return transformer.next_token_loss(lm.apply(params, tokens), tokens)
    segments = _xl_segments(tokens, seg)
    logits, memories = lm.apply(params, segments[0], None, seg, method=lm.with_memory)
    first = transformer.next_token_loss(logits, segments[0])
    if segments.shape[0] == 1:
      return first

    def body(memories, segment):
      logits, memories = lm.apply(params, segment, memories, seg, method=lm.with_memory)
      return memories, transformer.next_token_loss(logits, segment)

    _, rest = jax.lax.scan(body, memories, segments[1:])
    return (first + rest.sum()) / segments.shape[0]

  def step(state, tokens):
    params, opt_state = state
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  return step, (params, tx.init(params)), tokens


def attention_step_and_state(variant, length, args):
  """The causal attention function alone: grad of ``sum(out^2)`` and SGD on q, k, v."""
  if variant == "reversible":
    raise ValueError("reversible layers are a model option, not an attention function")
  name, options, _, seg = attention_setup(variant, length, args)
  options = transformer._attention_options(options)
  fn = attention.get(name)
  head_dim = args.dim // args.heads
  shape = (args.batch, length, args.heads, head_dim)
  qkv = tuple(jax.random.normal(k, shape) for k in jax.random.split(jax.random.key(0), 3))

  def attend(q, k, v):
    if not seg:
      return fn(q, k, v, causal=True, **options)
    n = length // seg
    split = lambda x: jnp.swapaxes(x.reshape((args.batch, n, seg) + x.shape[2:]), 0, 1)
    q_s, k_s, v_s = split(q), split(k), split(v)  # N x B x seg x H x D
    shift = lambda x: jax.lax.stop_gradient(jnp.concatenate([jnp.zeros_like(x[:1]), x[:-1]]))
    k_ctx = jnp.concatenate([shift(k_s), k_s], axis=2)
    v_ctx = jnp.concatenate([shift(v_s), v_s], axis=2)
    has_memory = jnp.arange(n) > 0
    mask = jnp.concatenate([jnp.broadcast_to(has_memory[:, None, None], (n, args.batch, seg)),
                            jnp.ones((n, args.batch, seg), bool)], axis=2)
    out = jax.vmap(lambda q, k, v, m: fn(q, k, v, mask_BxS=m, causal=True))(
        q_s, k_ctx, v_ctx, mask)
    return jnp.swapaxes(out, 0, 1).reshape(shape)

  def step(state, _):
    loss, grads = jax.value_and_grad(lambda s: jnp.sum(attend(*s) ** 2))(state)
    return jax.tree.map(lambda x, g: x - 1e-6 * g, state, grads), loss

  return step, qkv, jnp.zeros(())


def describe(variant, length, args) -> dict:
  name, options, reversible, seg = attention_setup(variant, length, args)
  if args.mode == "model":
    measured = (f"train step (fwd + bwd + Adam) of a causal DecoderLM, depth {args.depth}, "
                f"d_model {args.dim}, {args.heads} heads, MLP {4 * args.dim}, vocab {VOCAB}")
  else:
    measured = (f"causal attention function alone: fwd + bwd of sum(out^2) wrt q, k, v, "
                f"{args.heads} heads x {args.dim // args.heads} dims")
  config = {"variant": variant, "seq_len": length, "batch": args.batch,
            "measured": measured, "attention": name, "options": options,
            "attention_estimate_mb": round(estimate_mb(variant, length, args), 2)}
  if reversible:
    config["reversible"] = True
  if seg:
    config["xl_segment"] = seg
    config["xl_memory"] = seg
  return config


def run(args) -> int:
  make = model_step_and_state if args.mode == "model" else attention_step_and_state
  for length in args.lengths:
    for variant in args.variants:
      config = describe(variant, length, args)
      what = f"attention {variant} L={length} {args.mode} train step"
      if estimate_mb(variant, length, args) > args.memory_cap_mb:
        print(json.dumps({
            "what": what, "config": config,
            "skipped": f"estimated attention working set {config['attention_estimate_mb']} "
                       f"MB > --memory_cap_mb {args.memory_cap_mb}",
            "machine": harness.machine()}), flush=True)
        continue
      try:
        step, state, batch = make(variant, length, args)
      except ValueError as e:
        print(json.dumps({"what": what, "config": config, "skipped": str(e),
                          "machine": harness.machine()}), flush=True)
        continue
      tokens = args.batch * length
      steps = args.steps or max(1, round(args.tokens_per_window / tokens))
      timing = harness.time_step(step, state, batch, windows=args.windows, steps=steps)
      for stat in ("median", "min", "max"):
        key = "tokens_per_s" if stat == "median" else f"tokens_per_s_{stat}"
        timing[key] = round(timing[stat] * tokens, 1)
      harness.report(what, config, timing)
      del step, state, batch
  return 0


def main(argv=None) -> int:
  return run(parse_args(argv))


if __name__ == "__main__":
  sys.exit(main())
