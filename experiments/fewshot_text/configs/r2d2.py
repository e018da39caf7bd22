r"""R2-D2 ridge head on few-shot text classification (Bertinetto et al. 2019, 1805.08136).

The closed-form ridge regression head, with learned regularizer and logit scale, on the
transformer encoder's mean-pooled features; otherwise as configs/protonet.py.

  python -m experiments.fewshot_text.main \
      --config=experiments/fewshot_text/configs/r2d2.py:clinc150,5w1s \
      --workdir=runs/clinc150_r2d2_5w1s

Arguments: a data set (clinc150, trec, fewrel, reuters21578) and 5w1s or 5w5s, optionally
",smoke".
"""

from experiments.fewshot_text.configs import base

REPRODUCES = dict(
    paper="metalm baseline (no paper figure)",
    table="none: Bertinetto et al. 2019 report images only",
    metric="accuracy (%), 95% CI",
    expected=base.NOT_REPORTED,
    main="experiments.fewshot_text.main",
)


def get_config(arg: str | None = None):
  dataset, ways, shots, smoke = base.parse(arg)
  config = base.text(dataset, ways, shots, method=dict(name="r2d2"), head=True)
  return base.shrink(config) if smoke else config
