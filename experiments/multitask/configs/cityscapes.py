r"""Cityscapes: 7-class segmentation and depth at 128x256 (needs the data).

The two-task benchmark of MTAN (Liu et al. 2019, arXiv:1803.10704), CAGrad
(arXiv:2110.14048) and Nash-MTL (Navon et al. 2022, arXiv:2202.01017, the Cityscapes
table of Sec. 6), whose training this follows: Adam 1e-4 halved after 100 of 200 epochs,
batch 8, no augmentation, metrics on the 500 val images. The network is a small
convolutional encoder-decoder, not SegNet, so ``delta_m`` against the papers'
single-task SegNet (``cityscapes.STL_BASELINE``) mixes the balancer's effect with the
model's. Needs ``$METALM_DATA_DIR/cityscapes`` (see ``metalm/data/cityscapes.py``).

  python -m experiments.multitask.main \
      --config=experiments/multitask/configs/cityscapes.py:famo --workdir=runs/cityscapes_famo

Arguments: a balancer name (``equal_weighting`` by default), optionally ``,smoke``.
"""

import ml_collections

from experiments.multitask.benchmarks import dense
from experiments.multitask.configs import base

STEPS_PER_EPOCH = 2975 // 8


REPRODUCES = dict(
    paper="Navon et al. 2022, Multi-Task Learning as a Bargaining Game (arXiv:2202.01017)",
    table="the Cityscapes table (MTAN backbone, Δm% column)",
    metric="delta_m (%) against single-task SegNet, lower is better",
    expected={
        "equal_weighting": "22.60",
        "scale_invariant": "14.11",
        "rlw": "24.38",
        "dwa": "21.45",
        "uncertainty": "5.89",
        "mgda": "44.14",
        "pcgrad": "18.29",
        "graddrop": "23.73",
        "cagrad": "11.64",
        "imtl": "11.10",
        "nash_mtl": "6.82",
    },
    main="experiments.multitask.main",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  balancer, smoke, _ = base.parse(arg)
  config = base.common("cityscapes", balancer)
  config.data = dict(dataset="cityscapes", data_dir="", image_shape=(128, 256),
                     check_count=True, augment=False)
  config.model = dict(features=(16, 32, 64))
  config.optimizer = dict(
      name="adam", learning_rate=dict(name="exponential_decay", init_value=1e-4,
                                      transition_steps=100 * STEPS_PER_EPOCH,
                                      decay_rate=0.5, staircase=True))
  config.batch_size = 8
  config.num_steps = 200 * STEPS_PER_EPOCH
  config.log_every = 100
  config.checkpoint_every = STEPS_PER_EPOCH
  config.eval = dict(split="val", batch_size=8)
  config.baselines = dense.baselines("cityscapes")
  if smoke:
    config = base.shrink(config)
    config.batch_size = 2
    config.data.check_count = False
    config.model.features = (4, 8)
    config.eval.batch_size = 2
  return config
