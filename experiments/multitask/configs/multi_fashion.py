r"""Multi-Fashion with a shared LeNet (Lin et al. 2019, arXiv:1912.12854, Fig. 5).

Two Fashion-MNIST items per 36x36 image (120,000 train, 20,000 test), the setting of
``multi_mnist.py`` (Lin et al.'s ``multiMNIST/train.py`` with ``dataset='fashion'``):
LeNet trunk, linear heads, SGD 1e-3 momentum 0.9 halved every 15 epochs, 100 epochs.

  python -m experiments.multitask.main \
      --config=experiments/multitask/configs/multi_fashion.py:nash_mtl \
      --workdir=runs/multi_fashion_nash_mtl

Arguments: a balancer name (``equal_weighting`` by default), optionally ``,smoke``.
"""

from experiments.multitask.configs import multi_mnist

REPRODUCES = dict(
    paper="Lin et al. 2019, Pareto Multi-Task Learning (arXiv:1912.12854)",
    table="Fig. 5 (Multi-Fashion; a plot, no numbers)",
    metric="per-task test accuracy (%)",
    expected={
        "equal_weighting": "not reported in the paper",
        "uncertainty": "not reported in the paper",
        "gradnorm": "not reported in the paper",
        "mgda": "not reported in the paper",
    },
    main="experiments.multitask.main",
)


def get_config(arg: str | None = None):
  return multi_mnist.lenet("multi_fashion", arg)
