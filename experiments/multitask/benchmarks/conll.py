"""CoNLL-2000 POS tagging and chunking with a bi-LSTM or a transformer, POS read from a
lower layer.

Søgaard & Goldberg 2016 (ACL, P16-2038). Scores on the test split: POS token accuracy,
chunk F1 as conlleval computes it (``metalm.eval.chunking``), both in percent.
"""

import numpy as np

from experiments.multitask.benchmarks import common
from metalm.data import conll2000, multitask
from metalm.eval import chunking
from metalm.mtl import architectures, losses
from metalm.mtl.architectures import sequence

TASKS = ("pos", "chunk")


def targets(split: conll2000.Split) -> dict:
  """Tag ids with -1 on padding (ignored by the loss)."""
  return {t: np.where(split.mask, getattr(split, t), -1).astype(np.int32) for t in TASKS}


def make_trunk(m, vocab_size: int):
  """The tagger trunk ``m.trunk`` names, with every layer's states as outputs."""
  if m.trunk == "bilstm":
    return sequence.BiLSTMTagger(vocab_size, m.embed_dim, m.hidden, m.num_layers)
  if m.trunk == "transformer":
    return sequence.TransformerTagger(
        vocab_size, m.embed_dim, m.num_layers, m.num_heads, m.hidden, m.attention.name,
        {k: v for k, v in m.attention.items() if k != "name"} or None)
  raise ValueError(f"config.model.trunk must be 'bilstm' or 'transformer', got {m.trunk!r}.")


def setup(config) -> common.Benchmark:
  """Config ``data``: ``data_dir``, ``max_len`` (0: longest), ``lowercase``,
  ``min_count``, ``num_train`` and ``num_test`` (0: all); ``model``: ``trunk`` (``bilstm``
  or ``transformer``), ``embed_dim``, ``hidden`` (LSTM units per direction, or the
  transformer's MLP width), ``num_layers``, ``num_heads`` and ``attention`` (transformer
  only), ``pos_layer``, ``chunk_layer``."""
  data, m = config.data, config.model
  corpus = conll2000.load(data.data_dir or None, max_len=data.max_len or None,
                          lowercase=data.lowercase, min_count=data.min_count)
  train, test = corpus.train, getattr(corpus, config.eval.split)
  test = test._replace(**{k: v[:data.num_test or None] for k, v in test._asdict().items()})
  rows = slice(data.num_train or None)
  trunk = make_trunk(m, len(corpus.vocab.words))
  heads = {"pos": sequence.TagHead(len(corpus.vocab.pos), f"layer_{m.pos_layer}"),
           "chunk": sequence.TagHead(len(corpus.vocab.chunk), f"layer_{m.chunk_layer}")}
  model = architectures.build("hard_sharing", trunk, heads, (1, train.tokens.shape[1]))
  predict = common.predict_fn(model)

  def argmax(outputs, y):
    del y
    return {t: np.argmax(outputs[t], -1) for t in TASKS}

  def evaluate(params, model_state):
    pred = {t: [] for t in TASKS}
    for batch in multitask.batches(test.tokens, targets(test), config.eval.batch_size):
      for t, ids in argmax(predict(params, model_state, batch.x), None).items():
        pred[t].append(np.asarray(ids))
    pred = {t: np.concatenate(v) for t, v in pred.items()}
    pos_hits = (pred["pos"] == test.pos) & test.mask
    scores = chunking.chunk_f1_ids(pred["chunk"], test.chunk, test.mask, corpus.vocab.chunk)
    return {"pos": {"accuracy": 100.0 * pos_hits.sum() / test.mask.sum()},
            "chunk": {"f1": scores.f1, "accuracy": scores.accuracy}}

  return common.Benchmark(
      model=model, loss_fns={t: losses.masked_cross_entropy for t in TASKS},
      batcher=multitask.batcher(train.tokens[rows],
                                {t: v[rows] for t, v in targets(train).items()},
                                seed=config.seed),
      evaluate=evaluate,
      higher_is_better={"pos": {"accuracy": True}, "chunk": {"f1": True, "accuracy": True}})
