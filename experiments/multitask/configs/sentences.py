r"""TREC + sentence polarity + subjectivity, trained jointly on one byte-level transformer.

Three sentence-classification data sets that single-task papers report side by side
(Kim 2014, "Convolutional Neural Networks for Sentence Classification", EMNLP, Table 2:
MR, Subj and TREC), here as one multitask problem: each step draws 32 sentences of every
task, a 2-block pre-LayerNorm transformer (width 64, rotary positions; words of the
training texts as tokens, 48 per sentence; ``--config.data.units=bytes`` reads UTF-8
bytes instead) encodes them all, and each task has a linear head on the mean-pooled
features. Adam 1e-3, 2,000 steps. Any balancer:

  python -m experiments.multitask.main \
      --config=experiments/multitask/configs/sentences.py:pcgrad \
      --workdir=runs/sentences_pcgrad

Single-task baselines: the same config with ``--config.data.tasks=trec`` (or
``polarity``, ``subjectivity``); ``config.baselines`` holds their test accuracies as
measured here (BENCHMARKS.md), so ``results.json`` reports delta_m over the tasks trained.
The attention is ``--config.model.attention.name=`` any ``metalm.lm.attention`` mechanism.

Arguments: a balancer name (``equal_weighting`` by default), optionally ``,smoke``.
"""

import ml_collections

from experiments.multitask.configs import base

REPRODUCES = dict(
    paper=("Kim 2014, Convolutional Neural Networks for Sentence Classification (EMNLP "
           "2014, arXiv:1408.5882): single-task reference only; the joint setting is ours"),
    table="Table 2 (MR, Subj, TREC accuracy; CNN-rand, word CNN trained from scratch)",
    metric="per-task test accuracy (%)",
    expected={
        "equal_weighting": "single-task CNN-rand: MR 76.1, Subj 89.6, TREC 91.2",
    },
    main="experiments.multitask.main",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  balancer, smoke, _ = base.parse(arg)
  config = base.common("sentences", balancer)
  config.data = dict(tasks="trec,polarity,subjectivity", data_dir="", max_len=48,
                     units="words", min_count=2, num_train=0, num_test=0)
  config.model = dict(dim=64, depth=2, num_heads=4, mlp_dim=0, dropout=0.1,
                      attention=base.attention())
  config.batch_size = 32
  config.num_steps = 2_000
  config.log_every = 100
  config.checkpoint_every = 500
  config.eval.batch_size = 250
  # Single-task test accuracies of this config (one task each, equal weighting, seed 0).
  config.baselines = {"trec": {"accuracy": 86.6}, "polarity": {"accuracy": 72.23},
                      "subjectivity": {"accuracy": 90.7}}
  if smoke:
    config = base.shrink(config)
    config.data.update(max_len=16, num_train=32, num_test=16)
    config.model.update(dim=8, depth=1, num_heads=2)
  return config
