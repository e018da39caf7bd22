r"""QM9: 11 molecular property targets as 11 tasks (needs the data).

Nash-MTL's benchmark (Navon et al. 2022, arXiv:2202.01017, the QM9 table of Sec. 6; also
FAMO): the 11 targets of ``metalm.data.qm9``, 110,831 / 10,000 / 10,000 molecules, MSE
on standardized targets, Adam 1e-3, batch 120, 300 epochs; per-target test MAE and
``delta_m`` against the single-task MAE of that table (``qm9.STL_MAE``). The network is
a small pair-convolution net (``metalm.mtl.architectures.graph``), not the papers' MPNN,
so ``delta_m`` mixes the balancer's effect with the model's; no validation-based model
selection (Nash-MTL reports the test MAE at the best validation epoch) and no learning-
rate plateau schedule. Needs ``$METALM_DATA_DIR/qm9/qm9.npz`` (see
``metalm/data/qm9.py``).

  python -m experiments.multitask.main \
      --config=experiments/multitask/configs/qm9.py:nash_mtl --workdir=runs/qm9_nash_mtl

Arguments: a balancer name (``equal_weighting`` by default), optionally ``,smoke``.
"""

import ml_collections

from experiments.multitask.benchmarks import qm9
from experiments.multitask.configs import base

STEPS_PER_EPOCH = 110_831 // 120


REPRODUCES = dict(
    paper="Navon et al. 2022, Multi-Task Learning as a Bargaining Game (arXiv:2202.01017)",
    table="the QM9 table (11 regression targets, Δm% column)",
    metric="delta_m (%) against the single-task MAE, lower is better",
    expected={
        "equal_weighting": "177.6",
        "scale_invariant": "77.8",
        "rlw": "203.8",
        "dwa": "175.3",
        "uncertainty": "108.0",
        "mgda": "120.5",
        "pcgrad": "125.7",
        "cagrad": "112.8",
        "imtl": "77.2",
        "nash_mtl": "62.0",
    },
    main="experiments.multitask.main",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  balancer, smoke, _ = base.parse(arg)
  config = base.common("qm9", balancer)
  config.data = dict(data_dir="", seed=0, num_val=10_000, num_test=10_000, stats="train",
                     check_count=True)
  config.model = dict(hidden=64, num_layers=3, num_rbf=32)
  config.optimizer = dict(name="adam", learning_rate=1e-3)
  config.batch_size = 120
  config.num_steps = 300 * STEPS_PER_EPOCH
  config.log_every = 200
  config.checkpoint_every = STEPS_PER_EPOCH
  config.eval = dict(split="test", batch_size=500)
  config.baselines = qm9.baselines()
  if smoke:
    config = base.shrink(config)
    config.batch_size = 2
    config.data.update(num_val=2, num_test=2, check_count=False)
    config.model.update(hidden=8, num_layers=1, num_rbf=4)
  return config
