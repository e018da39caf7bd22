"""Sentence classification on several data sets at once with one shared transformer.

TREC coarse question classes, sentence polarity and subjectivity (``metalm.data.
sentence_tasks``): every training example holds one sentence of each task, encoded by a
``SentenceEncoder`` shared by all tasks, each task with its own linear head. Scores:
accuracy (%) on each task's test set.
"""

import numpy as np

from experiments.multitask.benchmarks import common
from metalm import losses
from metalm.data import multitask, sentence_tasks
from metalm.mtl import architectures
from metalm.mtl.architectures import sequence


def setup(config) -> common.Benchmark:
  """Config ``data``: ``tasks`` (a comma-separated subset of ``sentence_tasks.TASKS``),
  ``data_dir``, ``max_len``, ``units`` (``words`` or ``bytes``), ``min_count``,
  ``num_train`` and ``num_test`` per task (0: all); ``model``:
  ``dim``, ``depth``, ``num_heads``, ``mlp_dim``, ``dropout``, ``attention`` (a name of
  ``metalm.lm.attention`` and its options)."""
  data, m = config.data, config.model
  names = common.task_names(data.tasks, sentence_tasks.TASKS, "config.data.tasks")
  loaded = sentence_tasks.load(names, data.data_dir or None, max_len=data.max_len,
                               units=data.units, min_count=data.min_count)
  tasks = loaded.tasks
  train = {t: tasks[t].train._replace(tokens=tasks[t].train.tokens[:data.num_train or None],
                                      labels=tasks[t].train.labels[:data.num_train or None])
           for t in names}
  test = {t: tasks[t].test._replace(tokens=tasks[t].test.tokens[:data.num_test or None],
                                    labels=tasks[t].test.labels[:data.num_test or None])
          for t in names}
  trunk = sequence.SentenceEncoder(
      names, loaded.vocab_size, m.dim, m.depth, m.num_heads, m.mlp_dim or None,
      m.attention.name, {k: v for k, v in m.attention.items() if k != "name"},
      pad_id=loaded.pad_id, dropout=m.dropout)
  heads = {t: sequence.TagHead(len(tasks[t].classes), t) for t in names}
  model = architectures.build("hard_sharing", trunk, heads, (1, len(names), data.max_len))
  predict = common.predict_fn(model)

  def evaluate(params, model_state):
    scores = {}
    for task in names:
      hits = 0
      for start in range(0, len(test[task].tokens), config.eval.batch_size):
        tokens = test[task].tokens[start:start + config.eval.batch_size]
        # The task's sentence in every slot: only its own slot's features are read.
        x = np.repeat(tokens[:, None], len(names), axis=1)
        logits = predict(params, model_state, x)[task]
        hits += int(np.sum(np.argmax(logits, -1) == test[task].labels[start:start + len(x)]))
      scores[task] = {"accuracy": 100.0 * hits / len(test[task].tokens)}
    return scores

  return common.Benchmark(
      model=model, loss_fns={t: losses.cross_entropy for t in names},
      batcher=multitask.joint_batcher({t: train[t].tokens for t in names},
                                      {t: train[t].labels for t in names}, seed=config.seed),
      evaluate=evaluate,
      higher_is_better={t: {"accuracy": True} for t in names})
