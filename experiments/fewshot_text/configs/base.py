"""Shared shape of the few-shot text configs; each method file fills in its learner.

The config argument names the data set and the setting, ``"<dataset>,<N>w<K>s"``, each
optional (``clinc150`` and ``5w1s`` by default), optionally with ``,smoke``: e.g.
``protonet.py:trec,5w5s`` or ``maml.py:fewrel,5w1s,smoke``.
"""

import ml_collections

SETTINGS = {"5w1s": (5, 1), "5w5s": (5, 5)}
# Data set (a module of metalm.data) -> (tokens per example, its class split).
DATASETS = {"clinc150": (64, "domain"), "trec": (64, ""), "fewrel": (128, ""),
            "reuters21578": (128, "")}

# Every argument of a text config: no paper reports these settings.
NOT_REPORTED = {f"{dataset},{setting}": "not reported in the paper"
                for dataset in DATASETS for setting in SETTINGS}


def parse(arg: str | None) -> tuple[str, int, int, bool]:
  """``"trec,5w5s,smoke"`` -> ``("trec", 5, 5, True)``; names the bad part of a bad one."""
  parts = set(filter(None, (arg or "").split(",")))
  settings, datasets = parts & set(SETTINGS), parts & set(DATASETS)
  unknown = parts - set(SETTINGS) - set(DATASETS) - {"smoke"}
  if unknown or len(settings) > 1 or len(datasets) > 1:
    raise ValueError(f"Bad config argument {arg!r}: use a data set of {sorted(DATASETS)} "
                     f"and a setting of {sorted(SETTINGS)}, optionally with ',smoke'.")
  ways, shots = SETTINGS[settings.pop() if settings else "5w1s"]
  return datasets.pop() if datasets else "clinc150", ways, shots, "smoke" in parts


def text(dataset: str, ways: int, shots: int, *, method: dict,
         head: bool) -> ml_collections.ConfigDict:
  """N-way K-shot on a text data set with a 2-layer, 64-wide transformer encoder.

  Args:
    dataset: a key of ``DATASETS``.
    ways: N, for training and evaluation.
    shots: K.
    method: the ``config.method`` group (``name`` plus the factory's options).
    head: True for metric / closed-form heads (the model returns features).
  """
  max_len, split = DATASETS[dataset]
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.method = method
  config.model = dict(name="transformer_encoder", num_classes=0 if head else ways,
                      dim=64, depth=2, num_heads=4, norm="none")
  config.data = dict(dataset=dataset, split=split, data_dir="", max_len=max_len,
                     ways=ways, shots=shots, queries=15)
  # "byte" (vocab_size 0), or "bpe" with vocab_size >= 261: byte-level BPE trained on the
  # meta-train texts and kept in <workdir>/tokenizer.json. The model's vocabulary
  # (config.model.vocab_size) is set from it.
  config.tokenizer = dict(name="byte", vocab_size=0)
  # Masked-LM pretraining of the encoder on the meta-train texts (0 steps: none).
  config.pretrain = dict(steps=0, batch_size=32, learning_rate=1e-3, mask_rate=0.15)
  config.outer_optimizer = dict(name="adam", learning_rate=1e-3)
  config.meta_batch_size = 4
  config.num_steps = 5_000
  config.log_every = 100
  config.checkpoint_every = 1_000
  config.max_checkpoints = 3
  # every: meta-val accuracy every this many steps (0: off), to evaluations.jsonl.
  config.eval = dict(split="test", episodes=600, ways=ways, shots=shots, queries=15,
                     inner_steps=10, seed=1, batch_episodes=50, every=0)
  return config


def shrink(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``smoke`` variant: same code paths, seconds on a CPU."""
  config.model.dim = 16
  config.model.depth = 1
  config.model.num_heads = 2
  config.data.max_len = 32
  config.data.queries = 2
  config.meta_batch_size = 2
  config.num_steps = 3
  config.log_every = 1
  config.checkpoint_every = 2
  config.eval.episodes = 8
  config.eval.queries = 2
  config.eval.batch_episodes = 4
  config.eval.every = 2
  if "inner_steps" in config.method:
    config.eval.inner_steps = 2
  return config
