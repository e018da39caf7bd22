r"""MAML on Omniglot (Finn et al. 2017, arXiv:1703.03400, Table 1).

Paper (Omniglot, Conv-4): 5-way 1-shot 98.7 +- 0.4, 5-way 5-shot 99.9 +- 0.1,
20-way 1-shot 95.8 +- 0.3, 20-way 5-shot 98.9 +- 0.2. Training as in the paper's code:
inner SGD 0.4 with one step (5-way) or 0.1 with five steps (20-way), meta-batch 32 (5-way)
or 16 (20-way), Adam 1e-3, 60,000 meta-steps, 10 inner steps at test time.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/maml.py:5w1s \
      --workdir=runs/omniglot_maml_5w1s

Arguments: one of 5w1s, 5w5s, 20w1s, 20w5s, optionally ",smoke".
"""

from experiments.fewshot.configs import base

REPRODUCES = dict(
    paper=("Finn et al. 2017, Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks "
           "(arXiv:1703.03400)"),
    table="Table 1 (Omniglot, Conv-4)",
    metric="accuracy (%), 95% CI",
    expected={
        "5w1s": "98.7 ± 0.4",
        "5w5s": "99.9 ± 0.1",
        "20w1s": "95.8 ± 0.3",
        "20w5s": "98.9 ± 0.2",
    },
    main="experiments.fewshot.main",
)


def get_config(arg: str | None = None):
  ways, shots, smoke = base.parse(arg)
  five_way = ways == 5
  method = dict(name="maml", inner_steps=1 if five_way else 5,
                inner_optimizer=dict(name="sgd", learning_rate=0.4 if five_way else 0.1))
  config = base.omniglot(ways, shots, method=method, head=False)
  config.meta_batch_size = 32 if five_way else 16
  return base.shrink(config) if smoke else config
