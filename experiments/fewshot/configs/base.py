"""Shared shape of the few-shot image configs; each method file fills in its paper."""

import ml_collections

SETTINGS = {"5w1s": (5, 1), "5w5s": (5, 5), "20w1s": (20, 1), "20w5s": (20, 5)}


def parse(arg: str | None, default: str = "5w1s") -> tuple[int, int, bool]:
  """``"20w1s,smoke"`` -> ``(20, 1, True)``; names the bad part of a bad argument."""
  parts = set(filter(None, (arg or "").split(",")))
  unknown = parts - set(SETTINGS) - {"smoke"}
  settings = parts & set(SETTINGS)
  if unknown or len(settings) > 1:
    raise ValueError(f"Bad config argument {arg!r}: use one of {sorted(SETTINGS)}, "
                     "optionally with ',smoke'.")
  ways, shots = SETTINGS[settings.pop() if settings else default]
  return ways, shots, "smoke" in parts


def omniglot(ways: int, shots: int, *, method: dict, head: bool) -> ml_collections.ConfigDict:
  """Omniglot N-way K-shot with Conv-4 (64 filters, 28x28, transductive BatchNorm).

  Args:
    ways: N, for training and evaluation.
    shots: K.
    method: the ``config.method`` group (``name`` plus the factory's options).
    head: True for metric / closed-form heads (the model returns features).
  """
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.method = method
  config.model = dict(name="conv4", num_classes=0 if head else ways, filters=64,
                      norm="transductive")
  config.data = dict(dataset="omniglot", split="vinyals", data_dir="", ways=ways,
                     shots=shots, queries=15)
  config.outer_optimizer = dict(name="adam", learning_rate=1e-3)
  config.meta_batch_size = 32
  # Tasks run k at a time (``base.batched_outer_loss``); 0: all at once. On a CPU, 1
  # needs a thirtieth of the memory and is faster (BENCHMARKS.md).
  config.task_chunk = 0
  config.num_steps = 60_000
  config.log_every = 100
  config.checkpoint_every = 1_000
  config.max_checkpoints = 3
  # every: meta-val accuracy every this many steps (0: off), to evaluations.jsonl.
  config.eval = dict(split="test", episodes=600, ways=ways, shots=shots, queries=15,
                     inner_steps=10, seed=1, batch_episodes=50, every=0)
  return config


def shrink(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``smoke`` variant: same code paths, seconds on a CPU."""
  config.model.filters = 8
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
