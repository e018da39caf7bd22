r"""First-order MAML on Omniglot (Finn et al. 2017, arXiv:1703.03400, Table 1).

Paper (Omniglot, Conv-4, first-order approximation): 5-way 1-shot 98.3 +- 0.5,
20-way 1-shot 89.4 +- 0.5. Same training as configs/maml.py.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/fomaml.py:5w1s \
      --workdir=runs/omniglot_fomaml_5w1s
"""

from experiments.fewshot.configs import maml

REPRODUCES = dict(
    paper=("Finn et al. 2017, Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks "
           "(arXiv:1703.03400)"),
    table="Table 1 (Omniglot, Conv-4, first-order approximation row)",
    metric="accuracy (%), 95% CI",
    expected={
        "5w1s": "98.3 ± 0.5",
        "5w5s": "99.2 ± 0.2",
        "20w1s": "89.4 ± 0.5",
        "20w5s": "97.9 ± 0.1",
    },
    main="experiments.fewshot.main",
)


def get_config(arg: str | None = None):
  config = maml.get_config(arg)
  config.method.name = "fomaml"
  return config
