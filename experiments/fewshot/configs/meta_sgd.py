r"""Meta-SGD on Omniglot (Li et al. 2017, arXiv:1707.09835, Table 2).

Paper (Omniglot, Conv-4): 5-way 1-shot 99.53 +- 0.26, 5-way 5-shot 99.93 +- 0.09,
20-way 1-shot 95.93 +- 0.38, 20-way 5-shot 98.97 +- 0.19. One inner step with
learned per-parameter rates, the MAML architecture and meta-batches.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/meta_sgd.py:5w1s \
      --workdir=runs/omniglot_meta_sgd_5w1s
"""

from experiments.fewshot.configs import base

REPRODUCES = dict(
    paper=("Li et al. 2017, Meta-SGD: Learning to Learn Quickly for Few-Shot Learning "
           "(arXiv:1707.09835)"),
    table="Table 2 (Omniglot, Conv-4)",
    metric="accuracy (%), 95% CI",
    expected={
        "5w1s": "99.53 ± 0.26",
        "5w5s": "99.93 ± 0.09",
        "20w1s": "95.93 ± 0.38",
        "20w5s": "98.97 ± 0.19",
    },
    main="experiments.fewshot.main",
)


def get_config(arg: str | None = None):
  ways, shots, smoke = base.parse(arg)
  method = dict(name="meta_sgd", inner_steps=1, init_lr=0.4 if ways == 5 else 0.1)
  config = base.omniglot(ways, shots, method=method, head=False)
  config.meta_batch_size = 32 if ways == 5 else 16
  config.eval.inner_steps = 1  # The rates are learned for one step.
  return base.shrink(config) if smoke else config
