r"""MAML on sinusoid regression (Finn et al. 2017, arXiv:1703.03400, Sec. 5.1).

Reproduces the K=10 regression setup: MLP 1-40-40-1 (ReLU), one inner SGD step with
alpha=0.01, meta-batch 25, Adam 1e-3, 70,000 meta-iterations. Reference figure: MAML,
10-shot, MSE 0.77 after one step (Li et al. 2017, Meta-SGD, arXiv:1707.09835, Table 1).

  python -m experiments.sinusoid.main \
      --config=experiments/sinusoid/configs/maml.py --workdir=runs/sinusoid_maml

Arguments after the colon: ``smoke`` (seconds on a CPU), ``fomaml`` (first order),
combinable as ``smoke,fomaml``.
"""

import math

import ml_collections

REPRODUCES = dict(
    paper=("Finn et al. 2017, Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks "
           "(arXiv:1703.03400), Sec. 5.1; the figure is from Li et al. 2017, Meta-SGD "
           "(arXiv:1707.09835)"),
    table="Li et al. 2017, Table 1 (sinusoid regression, 10-shot, MAML row)",
    metric="query MSE after one inner step, 95% CI",
    expected={
        "": "0.77 ± 0.11",
        "fomaml": "not reported in the paper",
    },
    main="experiments.sinusoid.main",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = set(filter(None, (arg or "").split(",")))
  unknown = options - {"smoke", "fomaml"}
  if unknown:
    raise ValueError(f"Unknown config argument(s) {sorted(unknown)} for maml.py; "
                     "use 'smoke' and/or 'fomaml'.")
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.method = "fomaml" if "fomaml" in options else "maml"
  config.model = dict(name="mlp", hidden=(40, 40), num_outputs=1, norm="none")
  config.data = dict(
      num_support=10,
      num_query=10,
      amplitude=(0.1, 5.0),
      phase=(0.0, math.pi),
      x_range=(-5.0, 5.0),
  )
  config.inner_optimizer = dict(name="sgd", learning_rate=0.01)
  config.inner_steps = 1
  config.outer_optimizer = dict(name="adam", learning_rate=1e-3)
  config.meta_batch_size = 25
  config.num_steps = 70_000
  config.log_every = 1_000
  config.checkpoint_every = 5_000
  config.max_checkpoints = 3
  # Held-out evaluation: fresh tasks, K support points, many query points.
  config.eval = dict(num_tasks=1_000, num_query=100, inner_steps=(0, 1, 10), seed=1)

  if "smoke" in options:
    config.num_steps = 300
    config.log_every = 100
    config.checkpoint_every = 100
    config.eval.num_tasks = 100
  return config
