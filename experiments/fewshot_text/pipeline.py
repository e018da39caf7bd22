"""The data and initialization steps of ``experiments.fewshot_text.main``, without flags.

Kept apart from the entry point so tests and notebooks can import them (the entry point
defines absl flags, which a process may define only once).
"""

import os

import jax
import numpy as np
from absl import logging
from flax import traverse_util

from metalm import registry
from metalm.data import clinc150, fewrel, reuters21578, trec
from metalm.lm import pretrain, tokenizers

DATASETS = {"clinc150": clinc150.load, "trec": trec.load, "fewrel": fewrel.load,
            "reuters21578": reuters21578.load}


def load_splits(data, tokenizer=None):
  """The data set's ``TextSplits`` at ``data.max_len`` tokens (``data.split`` if set)."""
  loader = registry.lookup("dataset in config.data.dataset", data.dataset, DATASETS)
  options = {"split": data.split} if data.split else {}
  return loader(data.data_dir or None, max_len=data.max_len, tokenizer=tokenizer,
                **options)


def load_data(config, workdir):
  """The run's tokenizer and the splits encoded with it.

  The tokenizer is ``tokenizers.for_run(config.tokenizer, ...)``: BPE is trained on the
  meta-train texts only (never meta-val or meta-test) and saved to
  ``<workdir>/tokenizer.json``, or read back from there on resume.

  Returns:
    ``(tokenizer, splits)``.
  """
  byte_splits = []

  def train_texts():  # Only called to train BPE.
    byte_splits.append(load_splits(config.data))
    return [text for texts in byte_splits[0].train.texts for text in texts]

  tokenizer = tokenizers.for_run(config.tokenizer, train_texts, workdir)
  if byte_splits and not tokenizer.merges:
    return tokenizer, byte_splits[0]
  return tokenizer, load_splits(config.data, tokenizer)


def set_vocab_size(config, tokenizer) -> None:
  """Sets ``config.model.vocab_size`` to the tokenizer's (an error if set otherwise)."""
  configured = config.model.get("vocab_size")
  if configured not in (None, 0, tokenizer.vocab_size):
    raise ValueError(
        f"config.model.vocab_size={configured} but the tokenizer (config.tokenizer) has "
        f"{tokenizer.vocab_size} ids; leave config.model.vocab_size out: it is set from "
        "the tokenizer.")
  with config.unlocked():
    config.model.vocab_size = tokenizer.vocab_size


def pretrained_encoder(config, splits, workdir):
  """The encoder after ``config.pretrain.steps`` masked-LM steps on the meta-train texts,
  read from ``<workdir>/pretrained_encoder.npz`` when an earlier start of the run wrote it.

  Returns:
    ``({"embed", "trunk"} params, losses)``; losses is empty when read back.
  """
  path = os.path.join(workdir, "pretrained_encoder.npz")
  if os.path.exists(path):
    with np.load(path) as f:
      return traverse_util.unflatten_dict({k: f[k] for k in f.files}, sep="/"), []
  m, pre = config.model, config.pretrain
  if m.name != "transformer_encoder":
    raise ValueError(f"config.pretrain.steps > 0 needs config.model.name="
                     f"'transformer_encoder', got {m.name!r}.")
  module = pretrain.MaskedLM(m.vocab_size, m.dim, m.depth, m.num_heads, m.get("mlp_dim"))
  encoder, losses = pretrain.pretrain_mlm(
      np.concatenate(splits.train.tokens), module=module, steps=pre.steps,
      batch_size=pre.batch_size, learning_rate=pre.learning_rate, mask_rate=pre.mask_rate,
      seed=config.seed)
  os.makedirs(workdir, exist_ok=True)
  partial = f"{path}.{os.getpid()}.partial.npz"
  np.savez(partial, **traverse_util.flatten_dict(jax.tree.map(np.asarray, encoder),
                                                  sep="/"))
  os.replace(partial, path)
  logging.info("Masked-LM pretraining on the meta-train texts: loss %.3f -> %.3f in %d "
               "steps.", losses[0], losses[-1], len(losses))
  return encoder, losses
