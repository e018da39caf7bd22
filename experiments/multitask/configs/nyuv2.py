r"""NYUv2: 13-class segmentation, depth and surface normals (needs the data).

The benchmark of MTAN (Liu et al. 2019, arXiv:1803.10704), CAGrad (arXiv:2110.14048) and
Nash-MTL (Navon et al. 2022, arXiv:2202.01017, the NYUv2 table of Sec. 6), whose
training this follows: Adam 1e-4 halved after 100 of 200 epochs, batch 2, MTAN's scale-
crop and flip augmentation, metrics on the 654 val images. The network is a small
convolutional encoder-decoder (``metalm.mtl.architectures.dense``), not the papers'
SegNet/MTAN, so ``delta_m`` here, against those papers' single-task SegNet
(``nyuv2.STL_BASELINE``), mixes the balancer's effect with the model's. Needs
``$METALM_DATA_DIR/nyuv2`` (see ``metalm/data/nyuv2.py``).

  python -m experiments.multitask.main \
      --config=experiments/multitask/configs/nyuv2.py:nash_mtl --workdir=runs/nyuv2_nash_mtl

Arguments: a balancer name (``equal_weighting`` by default), optionally ``,smoke``.
"""

import ml_collections

from experiments.multitask.benchmarks import dense
from experiments.multitask.configs import base

STEPS_PER_EPOCH = 795 // 2


REPRODUCES = dict(
    paper="Navon et al. 2022, Multi-Task Learning as a Bargaining Game (arXiv:2202.01017)",
    table="the NYUv2 table (MTAN backbone, Δm% column)",
    metric="delta_m (%) against single-task SegNet, lower is better",
    expected={
        "equal_weighting": "5.59",
        "scale_invariant": "4.39",
        "rlw": "7.78",
        "dwa": "3.57",
        "uncertainty": "4.05",
        "mgda": "1.38",
        "pcgrad": "3.97",
        "graddrop": "3.58",
        "cagrad": "0.20",
        "imtl": "-0.76",
        "nash_mtl": "-4.04",
    },
    main="experiments.multitask.main",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  balancer, smoke, _ = base.parse(arg)
  config = base.common("nyuv2", balancer)
  config.data = dict(dataset="nyuv2", data_dir="", image_shape=(288, 384), check_count=True,
                     augment=True)
  config.model = dict(features=(16, 32, 64))
  config.optimizer = dict(
      name="adam", learning_rate=dict(name="exponential_decay", init_value=1e-4,
                                      transition_steps=100 * STEPS_PER_EPOCH,
                                      decay_rate=0.5, staircase=True))
  config.batch_size = 2
  config.num_steps = 200 * STEPS_PER_EPOCH
  config.log_every = 100
  config.checkpoint_every = STEPS_PER_EPOCH
  config.eval = dict(split="val", batch_size=2)
  config.baselines = dense.baselines("nyuv2")
  if smoke:
    config = base.shrink(config)
    config.batch_size = 2
    config.data.check_count = False
    config.model.features = (4, 8)
    config.eval.batch_size = 2
  return config
