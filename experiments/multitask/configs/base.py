"""Shared shape of the multitask configs; each benchmark file fills in its paper.

A config argument is a comma-separated list: optionally one balancer name (any key of
``metalm.mtl.BALANCERS``; ``equal_weighting`` by default), optionally ``smoke``, and
the file's own variants. ``--config.balancer.name=pcgrad`` on the command line picks
a balancer too (with its default options).
"""

import ml_collections

from metalm import mtl, registry


def parse(arg: str | None, *, variants: tuple[str, ...] = ()) -> tuple[str, bool, set]:
  """``"pcgrad,smoke"`` -> ``("pcgrad", True, set())``; names every bad part.

  Returns:
    ``(balancer name, smoke, the variants given)``.
  """
  parts = [p for p in (arg or "").split(",") if p]
  known = {"smoke", *variants}
  names = [p for p in parts if p not in known]
  if len(names) > 1:
    raise ValueError(f"Bad config argument {arg!r}: at most one balancer, got {names}.")
  name = names[0] if names else "equal_weighting"
  registry.lookup(f"balancer in config argument {arg!r}", name, mtl.BALANCERS)
  return name, "smoke" in parts, set(parts) & set(variants)


def common(benchmark: str, balancer: str) -> ml_collections.ConfigDict:
  """The fields every multitask config has; benchmark files fill ``data`` and ``model``."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.benchmark = benchmark
  config.data = {}
  config.model = {}
  config.balancer = dict(name=balancer)
  config.rep_grad = False
  config.optimizer = dict(name="adam", learning_rate=1e-3)
  config.batch_size = 256
  config.num_steps = 10_000
  config.log_every = 100
  config.checkpoint_every = 1_000
  config.max_checkpoints = 3
  config.eval = dict(split="test", batch_size=1_000)
  # Single-task scores {task: {metric: value}} for delta_m; empty when the paper has none.
  config.baselines = {}
  return config


def attention() -> dict:
  """A transformer trunk's ``attention`` group: a ``metalm.lm.attention`` name and the
  options of every mechanism (each reads its own and ignores the rest)."""
  return dict(name="full", window=16, num_global=1, num_features=64, num_buckets=8,
              chunk_size=16, seed=0)


def reference() -> ml_collections.ConfigDict:
  """Every allowed top-level field (their groups are checked by their consumers)."""
  return common("multi_mnist", "equal_weighting")


FREE = ("data", "model", "balancer", "optimizer", "eval", "baselines")


def shrink(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``smoke`` variant: same code paths, seconds on a CPU."""
  config.batch_size = 8
  config.num_steps = 4
  config.log_every = 2
  config.checkpoint_every = 2
  config.eval.batch_size = 16
  return config
