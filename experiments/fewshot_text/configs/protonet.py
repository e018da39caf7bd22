r"""Prototypical Networks on few-shot text classification (Snell et al. 2017, 1703.05175).

Squared Euclidean distances to class means of the transformer encoder's mean-pooled
features; episodes of the evaluation setting (5-way, K shots, 15 queries), Adam 1e-3.

  python -m experiments.fewshot_text.main \
      --config=experiments/fewshot_text/configs/protonet.py:clinc150,5w1s \
      --workdir=runs/clinc150_protonet_5w1s

Arguments: a data set (clinc150, trec, fewrel, reuters21578) and 5w1s or 5w5s, optionally
",smoke".
"""

from experiments.fewshot_text.configs import base

REPRODUCES = dict(
    paper="metalm baseline (no paper figure)",
    table="none: Snell et al. 2017 report images only",
    metric="accuracy (%), 95% CI",
    expected=base.NOT_REPORTED,
    main="experiments.fewshot_text.main",
)


def get_config(arg: str | None = None):
  dataset, ways, shots, smoke = base.parse(arg)
  config = base.text(dataset, ways, shots, method=dict(name="protonet"), head=True)
  return base.shrink(config) if smoke else config
