r"""Multi-(Fashion+MNIST) with a shared LeNet (Lin et al. 2019, arXiv:1912.12854, Fig. 5).

An MNIST digit top-left and a Fashion-MNIST item bottom-right of each 36x36 image
(120,000 train, 20,000 test), the setting of ``multi_mnist.py`` (Lin et al.'s
``multiMNIST/train.py`` with ``dataset='fashion_and_mnist'``).

  python -m experiments.multitask.main \
      --config=experiments/multitask/configs/multi_fashion_mnist.py:cagrad \
      --workdir=runs/multi_fashion_mnist_cagrad

Arguments: a balancer name (``equal_weighting`` by default), optionally ``,smoke``.
"""

from experiments.multitask.configs import multi_mnist

REPRODUCES = dict(
    paper="Lin et al. 2019, Pareto Multi-Task Learning (arXiv:1912.12854)",
    table="Fig. 5 (Multi-(Fashion+MNIST); a plot, no numbers)",
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
  return multi_mnist.lenet("multi_fashion_mnist", arg)
