"""Attention maps of a tiny transformer intent classifier on CLINC150 (byte tokens).

``models.text_encoder.TextEncoder`` (Vaswani et al. 2017, arXiv:1706.03762) is trained
for a few Adam steps to tell apart the first intents of CLINC150 (Larson et al. 2019,
arXiv:1909.02027); ``metalm.tools.attention_maps`` gives every layer's softmax weights
on one short test sentence, drawn per layer and head with the bytes on both axes.
Skipped, with the reason in the results, when CLINC150 is not in ``$METALM_DATA_DIR``.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from matplotlib.figure import Figure

from experiments.tools import classifier
from metalm.data import clinc150
from metalm.lm import tokenizers
from metalm.models import text_encoder
from metalm.tools import attention_maps


def load(cfg):
  """``(train, test, intents)`` token arrays of the first ``cfg.num_intents`` intents."""
  split = clinc150.load(max_len=cfg.max_len).train
  xs, ys, texts = [], [], []
  for label, (tokens, class_texts) in enumerate(
      zip(split.tokens[:cfg.num_intents], split.texts[:cfg.num_intents], strict=True)):
    xs.append(tokens)
    ys.append(np.full(len(tokens), label, np.int32))
    texts.extend(class_texts)
  x, y, texts = np.concatenate(xs), np.concatenate(ys), np.asarray(texts, object)
  order = np.random.default_rng(0).permutation(len(x))
  x, y, texts = x[order], y[order], texts[order]
  cut = int(0.8 * len(x))
  return (x[:cut], y[:cut]), (x[cut:], y[cut:], texts[cut:]), split.names[:cfg.num_intents]


def run(config, workdir):
  cfg = config.explain.attention
  try:
    train, test, intents = load(cfg)
  except FileNotFoundError as error:
    reason = f"CLINC150 not found: {error}"
    logging.warning("Skipping attention_maps.png: %s", reason)
    return {"skipped": reason, "pngs": []}
  module = text_encoder.TextEncoder(num_classes=cfg.num_intents, dim=cfg.dim, depth=cfg.depth,
                                    num_heads=cfg.num_heads, mlp_dim=2 * cfg.dim)
  key, init_key = jax.random.split(jax.random.key(config.seed + 5))
  params = jax.jit(module.init)(init_key, jnp.asarray(train[0][:1]))["params"]
  logits = lambda p, x: module.apply({"params": p}, x)

  def loss(p, x, y, k):
    return optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()

  params = classifier.fit(loss, params, train, steps=cfg.steps, batch_size=cfg.batch_size,
                          learning_rate=cfg.learning_rate, key=key, chunk=min(50, cfg.steps),
                          log=(workdir, "text_transformer"))
  acc = classifier.accuracy(lambda z: logits(params, z), test[0], test[1])

  tokenizer = tokenizers.byte_tokenizer()
  lengths = (test[0] != tokenizer.pad_id).sum(1)
  fits = np.flatnonzero((lengths >= cfg.min_sentence_len) & (lengths <= cfg.max_sentence_len))
  row = int(fits[0]) if len(fits) else int(np.argmin(lengths))
  tokens = test[0][row:row + 1, :lengths[row]]
  maps, out = jax.jit(lambda p, t: (attention_maps.attention_maps(module, p, t), logits(p, t)))(
      params, jnp.asarray(tokens))
  prediction = int(jnp.argmax(out, -1)[0])
  table = tokenizer.token_bytes()
  labels = [table[int(t)].decode("utf-8", errors="replace") or "<?>" for t in tokens[0]]
  labels = ["␣" if s == " " else s for s in labels]
  title = (f"'{test[2][row]}': intent {intents[test[1][row]]}, predicted "
           f"{intents[prediction]}")
  png = draw(os.path.join(workdir, "attention_maps.png"), [np.asarray(m[0]) for m in maps],
             labels, title)
  return {"intents": list(intents), "num_train": len(train[0]), "num_test": len(test[0]),
          "steps": cfg.steps, "dim": cfg.dim, "depth": cfg.depth, "num_heads": cfg.num_heads,
          "test_accuracy": acc, "sentence": str(test[2][row]), "tokens": len(labels),
          "map_shapes": [list(m.shape) for m in maps],
          "row_sums_max_error": float(max(np.abs(np.asarray(m).sum(-1) - 1).max()
                                          for m in maps)),
          "pngs": [os.path.basename(png)]}


def draw(path, maps_HxLxS, labels, title) -> str:
  """One heat map per layer (rows) and head (columns): query bytes down, key bytes across."""
  layers, heads = len(maps_HxLxS), maps_HxLxS[0].shape[0]
  size = 0.16 * len(labels) + 1.2
  fig = Figure(figsize=(size * heads, size * layers + 0.5))
  axes = fig.subplots(layers, heads, squeeze=False)
  ticks = np.arange(len(labels))
  for layer, maps in enumerate(maps_HxLxS):
    for head in range(heads):
      ax = axes[layer, head]
      ax.imshow(maps[head], cmap="viridis", vmin=0.0, vmax=float(maps[head].max()))
      ax.set_title(f"layer {layer}, head {head}", fontsize=8)
      ax.set_xticks(ticks, labels, fontsize=6)
      ax.set_yticks(ticks, labels, fontsize=6)
      ax.set_xlabel("key", fontsize=7)
      ax.set_ylabel("query", fontsize=7)
  fig.suptitle(title, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  return path
