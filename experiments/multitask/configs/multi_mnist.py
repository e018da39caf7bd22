r"""Multi-MNIST with a shared LeNet (Sener & Koltun 2018; Lin et al. 2019).

Reproduces the MultiMNIST setting of Lin et al. 2019, "Pareto Multi-Task Learning"
(arXiv:1912.12854, Sec. 5.1 and Fig. 5; their ``multiMNIST/train.py``), the benchmark of
Sener & Koltun 2018 (arXiv:1810.04650, the MultiMNIST table of Sec. 5): 36x36
composites (120,000 train, 20,000 test), LeNet trunk (conv 10 9x9, conv 20 5x5, dense
50) with a linear head per digit, SGD 1e-3 with momentum 0.9 halved every 15 epochs,
batch 256, 100 epochs; per-task test accuracy. Any balancer:

  python -m experiments.multitask.main \
      --config=experiments/multitask/configs/multi_mnist.py:mgda \
      --workdir=runs/multi_mnist_mgda

Arguments: a balancer name (``equal_weighting`` by default), optionally ``,smoke``.
Single-task baselines (for delta_m): ``--config.data.tasks=left`` (or ``right``).
"""

import ml_collections

from experiments.multitask.configs import base

STEPS_PER_EPOCH = 120_000 // 256


REPRODUCES = dict(
    paper=("Sener & Koltun 2018, Multi-Task Learning as Multi-Objective Optimization "
           "(arXiv:1810.04650); setting of Lin et al. 2019, Pareto Multi-Task Learning "
           "(arXiv:1912.12854)"),
    table=("Sener & Koltun 2018, the MultiMNIST table of Sec. 5 (mgda: their MGDA-UB with "
           "--config.rep_grad=True); Lin et al. 2019, Fig. 5"),
    metric="per-task test accuracy (%)",
    expected={
        "equal_weighting": "in the paper, not transcribed here",
        "uncertainty": "in the paper, not transcribed here",
        "gradnorm": "in the paper, not transcribed here",
        "mgda": "in the paper, not transcribed here",
    },
    main="experiments.multitask.main",
)


def lenet(dataset: str, arg: str | None) -> ml_collections.ConfigDict:
  """The shared LeNet config of the three Multi-MNIST data sets."""
  balancer, smoke, _ = base.parse(arg)
  config = base.common("multi_mnist", balancer)
  config.data = dict(dataset=dataset, data_dir="", num_train=0, num_test=0, image_size=36,
                     max_shift=4, seed=0, tasks="left,right")
  config.model = dict(architecture="hard_sharing", kernels=(9, 5), head=(10,))
  config.optimizer = dict(
      name="sgd", momentum=0.9,
      learning_rate=dict(name="exponential_decay", init_value=1e-3,
                         transition_steps=15 * STEPS_PER_EPOCH, decay_rate=0.5,
                         staircase=True))
  config.batch_size = 256
  config.num_steps = 100 * STEPS_PER_EPOCH
  config.log_every = STEPS_PER_EPOCH // 4
  config.checkpoint_every = STEPS_PER_EPOCH
  config.eval.batch_size = 1_000
  if smoke:
    config = base.shrink(config)
    config.data.num_train, config.data.num_test = 64, 32
  return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return lenet("multi_mnist", arg)
