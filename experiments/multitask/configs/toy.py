r"""The two-objective toy of CAGrad (Liu et al. 2021) and Nash-MTL (Navon et al. 2022).

Every balancer from each start, Adam 1e-3 on the two parameters. Two settings, each
from its authors' released code:

  ``cagrad``:   CAGrad's ``toy.py`` (arXiv:2110.14048, Fig. 1): starts (-8.5, 7.5),
                (-8.5, -5), (9, 9); both losses unscaled; 100,000 steps; CAGrad with
                c = 0.5 divided by 1 + c; PCGrad averaging the projected gradients.
  ``nash_mtl``: Nash-MTL's ``experiments/toy/trainer.py`` (arXiv:2202.01017, Fig. 2):
                starts (-8.5, 7.5), (0, 0), (9, 9), (-7.5, -0.5), (9, -1); the first
                loss times 0.1; 35,000 steps; CAGrad c = 0.4 divided by 1 + c^2;
                Nash-MTL's gradient clipped at norm 1 (the official ``max_norm``).
  ``five_starts``: CAGrad's functions, options and length (``cagrad``) from Nash-MTL's
                five starts.

  python -m experiments.multitask.toy --config=experiments/multitask/configs/toy.py:cagrad \
      --workdir=runs/toy_cagrad

Arguments: ``cagrad`` (default), ``nash_mtl`` or ``five_starts``, optionally ``,smoke``.
"""

import ml_collections

from metalm import mtl

SETTINGS = {
    "cagrad": dict(starts=((-8.5, 7.5), (-8.5, -5.0), (9.0, 9.0)), scale=1.0,
                   num_steps=100_000, cagrad=dict(c=0.5, rescale=2),
                   pcgrad=dict(reduction="mean")),
    "nash_mtl": dict(starts=((-8.5, 7.5), (0.0, 0.0), (9.0, 9.0), (-7.5, -0.5), (9.0, -1.0)),
                     scale=0.1, num_steps=35_000, cagrad=dict(c=0.4, rescale=1),
                     pcgrad=dict(reduction="sum")),
}
SETTINGS["five_starts"] = dict(SETTINGS["cagrad"], starts=SETTINGS["nash_mtl"]["starts"])
SMOKE_BALANCERS = ("equal_weighting", "mgda", "cagrad", "nash_mtl", "famo", "db_mtl")


REPRODUCES = dict(
    paper=("Liu et al. 2021, Conflict-Averse Gradient Descent for Multi-task Learning "
           "(arXiv:2110.14048); Navon et al. 2022, Multi-Task Learning as a Bargaining Game "
           "(arXiv:2202.01017)"),
    table="CAGrad Fig. 1 and Nash-MTL Fig. 2 (trajectory plots, no numbers)",
    metric="optimization trajectories and final points (plot)",
    expected={
        "cagrad": "not reported in the paper",
        "nash_mtl": "not reported in the paper",
    },
    main="experiments.multitask.toy",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  parts = set(filter(None, (arg or "").split(",")))
  settings = parts & set(SETTINGS)
  if parts - set(SETTINGS) - {"smoke"} or len(settings) > 1:
    raise ValueError(f"Bad config argument {arg!r}: use one of {sorted(SETTINGS)}, "
                     "optionally with ',smoke'.")
  setting = settings.pop() if settings else "cagrad"
  chosen = SETTINGS[setting]
  config = ml_collections.ConfigDict()
  config.setting = setting
  config.seed = 0
  config.starts = chosen["starts"]
  config.scale = chosen["scale"]
  config.num_steps = chosen["num_steps"]
  config.optimizer = dict(name="adam", learning_rate=1e-3)
  # Every balancer of the registry, with the setting's options (FAMO as in its own toy:
  # no weight decay; the losses it sees are offset by toy_problem.MIN_LOSS).
  balancers = {name: {} for name in mtl.BALANCERS}
  balancers.update(cagrad=chosen["cagrad"], pcgrad=chosen["pcgrad"],
                   famo=dict(weight_decay=0.0))
  config.balancers = balancers
  config.max_norm = dict(nash_mtl=1.0)  # Clipping of the shared gradient, per balancer.
  config.record_every = 100
  # A final point within this distance of the Pareto set counts as on it.
  config.front_tolerance = 0.05
  if "smoke" in parts:
    config.num_steps = 400
    config.balancers = {name: balancers[name] for name in SMOKE_BALANCERS}
    config.record_every = 20
  return config
