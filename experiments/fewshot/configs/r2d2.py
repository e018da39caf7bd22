r"""R2-D2 ridge-regression head on Omniglot (Bertinetto et al. 2019, arXiv:1805.08136, Table 1).

The closed-form ridge head on Conv-4 features, with learned regularizer and logit scale.
The backbone and episode sizes are metalm's Conv-4 Omniglot setup, not the paper's
larger network, so compare with the paper's Table 1 as a reference point.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/r2d2.py:5w1s \
      --workdir=runs/omniglot_r2d2_5w1s
"""

from experiments.fewshot.configs import base

REPRODUCES = dict(
    paper=("Bertinetto et al. 2019, Meta-learning with differentiable closed-form solvers "
           "(arXiv:1805.08136)"),
    table="Table 1 (Omniglot; the paper's backbone is larger than this Conv-4)",
    metric="accuracy (%), 95% CI",
    expected={
        "5w1s": "98.6 ± 0.1",
        "5w5s": "99.7 ± 0.0",
        "20w1s": "94.7 ± 0.1",
        "20w5s": "98.9 ± 0.0",
    },
    main="experiments.fewshot.main",
)


def get_config(arg: str | None = None):
  ways, shots, smoke = base.parse(arg)
  config = base.omniglot(ways, shots, method=dict(name="r2d2"), head=True)
  config.meta_batch_size = 8
  config.num_steps = 20_000
  return base.shrink(config) if smoke else config
