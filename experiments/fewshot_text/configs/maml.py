r"""MAML on few-shot text classification (Finn et al. 2017, arXiv:1703.03400).

The whole transformer encoder and its 5-way linear head adapt in the inner loop: SGD
0.1, 2 steps in training and 10 at test time (second order), Adam 1e-3 outside.

  python -m experiments.fewshot_text.main \
      --config=experiments/fewshot_text/configs/maml.py:clinc150,5w1s \
      --workdir=runs/clinc150_maml_5w1s

Arguments: a data set (clinc150, trec, fewrel, reuters21578) and 5w1s or 5w5s, optionally
",smoke".
"""

from experiments.fewshot_text.configs import base

REPRODUCES = dict(
    paper="metalm baseline (no paper figure)",
    table="none: Finn et al. 2017 report images and regression only",
    metric="accuracy (%), 95% CI",
    expected=base.NOT_REPORTED,
    main="experiments.fewshot_text.main",
)


def get_config(arg: str | None = None, name: str = "maml"):
  dataset, ways, shots, smoke = base.parse(arg)
  method = dict(name=name, inner_steps=2,
                inner_optimizer=dict(name="sgd", learning_rate=0.1))
  config = base.text(dataset, ways, shots, method=method, head=False)
  return base.shrink(config) if smoke else config
