r"""ANIL on Omniglot (Raghu et al. 2020, arXiv:1909.09157, Table 2).

Paper (Omniglot, Conv-4): 20-way 1-shot 96.2 +- 0.5, 20-way 5-shot 98.0 +- 0.3. Only the
head adapts in the inner loop; training otherwise as configs/maml.py.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/anil.py:20w1s \
      --workdir=runs/omniglot_anil_20w1s
"""

from experiments.fewshot.configs import maml

REPRODUCES = dict(
    paper=("Raghu et al. 2020, Rapid Learning or Feature Reuse? Towards Understanding the "
           "Effectiveness of MAML (arXiv:1909.09157)"),
    table="Table 2 (Omniglot 20-way, Conv-4)",
    metric="accuracy (%), 95% CI",
    expected={
        "5w1s": "not reported in the paper",
        "5w5s": "not reported in the paper",
        "20w1s": "96.2 ± 0.5",
        "20w5s": "98.0 ± 0.3",
    },
    main="experiments.fewshot.main",
)


def get_config(arg: str | None = None):
  config = maml.get_config(arg)
  config.method.name = "anil"
  return config
