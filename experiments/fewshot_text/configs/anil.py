r"""ANIL on few-shot text classification (Raghu et al. 2020, arXiv:1909.09157).

Only the linear head on the transformer encoder's pooled features adapts in the inner
loop; training otherwise as configs/maml.py.

  python -m experiments.fewshot_text.main \
      --config=experiments/fewshot_text/configs/anil.py:clinc150,5w1s \
      --workdir=runs/clinc150_anil_5w1s

Arguments: a data set (clinc150, trec, fewrel, reuters21578) and 5w1s or 5w5s, optionally
",smoke".
"""

from experiments.fewshot_text.configs import base, maml

REPRODUCES = dict(
    paper="metalm baseline (no paper figure)",
    table="none: Raghu et al. 2020 report images only",
    metric="accuracy (%), 95% CI",
    expected=base.NOT_REPORTED,
    main="experiments.fewshot_text.main",
)


def get_config(arg: str | None = None):
  return maml.get_config(arg, name="anil")
