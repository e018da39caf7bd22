r"""BOIL on Omniglot (Oh et al. 2021, arXiv:2008.08882).

Only the body adapts in the inner loop; the head is frozen. Training otherwise as
configs/maml.py (Finn et al.'s Omniglot setup); compare with the BOIL paper's tables.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/boil.py:5w1s \
      --workdir=runs/omniglot_boil_5w1s
"""

from experiments.fewshot.configs import maml

REPRODUCES = dict(
    paper=("Oh et al. 2021, BOIL: Towards Representation Change for Few-shot Learning "
           "(arXiv:2008.08882)"),
    table="the paper's tables (its mini-ImageNet rows: mini_imagenet.py)",
    metric="accuracy (%), 95% CI",
    expected={
        "5w1s": "in the paper, not transcribed here",
        "5w5s": "in the paper, not transcribed here",
        "20w1s": "in the paper, not transcribed here",
        "20w5s": "in the paper, not transcribed here",
    },
    main="experiments.fewshot.main",
)


def get_config(arg: str | None = None):
  config = maml.get_config(arg)
  config.method.name = "boil"
  return config
