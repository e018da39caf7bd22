r"""CAVIA on sinusoid regression (Zintgraf et al. 2019, arXiv:1810.03642, Sec. 5.1, Table 1).

The setup of the authors' code (lmzintgraf/cavia, regression/arguments.py): MLP 1-40-40-1
(ReLU) whose input is concatenated with 5 context parameters, one inner SGD step on the
context with rate 1.0, K=10 support and 10 query points, meta-batch 25, Adam 1e-3,
50,000 meta-iterations. Compare with the paper's Table 1 (10-shot MSE on 1,000 test
tasks, 95% CI) and with ``configs/maml.py`` run the same way.

  python -m experiments.sinusoid.main \
      --config=experiments/sinusoid/configs/cavia.py --workdir=runs/sinusoid_cavia

Argument after the colon: ``smoke`` (seconds on a CPU).
"""

import ml_collections

from experiments.sinusoid.configs import maml

REPRODUCES = dict(
    paper="Zintgraf et al. 2019, Fast Context Adaptation via Meta-Learning (arXiv:1810.03642)",
    table="Table 1 (sinusoid regression, 10-shot)",
    metric="query MSE after adaptation, 95% CI",
    expected={
        "": "in the paper, not transcribed here",
    },
    main="experiments.sinusoid.main",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = set(filter(None, (arg or "").split(",")))
  if options - {"smoke"}:
    raise ValueError(f"Unknown config argument(s) {sorted(options - {'smoke'})} for "
                     "cavia.py; use 'smoke'.")
  config = maml.get_config(arg)  # Same fields, data and evaluation as MAML's.
  config.method = "cavia"
  config.model = dict(name="context_mlp", hidden=(40, 40), num_outputs=1, num_context=5,
                      norm="none")
  config.inner_optimizer = dict(name="sgd", learning_rate=1.0)
  config.inner_steps = 1
  if "smoke" not in options:
    config.num_steps = 50_000
  return config
