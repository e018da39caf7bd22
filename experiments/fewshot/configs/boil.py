r"""BOIL on Omniglot (Oh et al. 2021, arXiv:2008.08882).

Only the body adapts in the inner loop; the head is frozen. Training otherwise as
configs/maml.py (Finn et al.'s Omniglot setup); compare with the BOIL paper's tables.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/boil.py:5w1s \
      --workdir=runs/omniglot_boil_5w1s
"""

from experiments.fewshot.configs import maml


def get_config(arg: str | None = None):
  config = maml.get_config(arg)
  config.method.name = "boil"
  return config
