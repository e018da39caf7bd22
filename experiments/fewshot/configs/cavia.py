r"""CAVIA on Omniglot with a FiLM-conditioned Conv-4 (Zintgraf et al. 2019, arXiv:1810.03642).

The paper evaluates few-shot classification on miniImageNet only (Table 3; CAVIA with
512 filters: 5-way 1-shot 51.82 +- 0.65, 5-way 5-shot 65.85 +- 0.55), so this Omniglot
config has no published number to match; it runs the paper's classification recipe
on ``base.omniglot``'s data and Conv-4. Recipe as in the authors' code
(lmzintgraf/cavia, classification/arguments.py): 100 context parameters FiLM-modulating
the third conv block, 2 inner SGD steps on the context with rate 1.0 at training and
test time, meta-batch 16, Adam 1e-3, 60,000 meta-steps, 15 query examples per class.
Their Adam rate also decays by 0.9 on a schedule not given here; it is left constant.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/cavia.py:5w1s \
      --workdir=runs/omniglot_cavia_5w1s

Arguments: one of 5w1s, 5w5s, 20w1s, 20w5s, optionally ",smoke".
"""

from experiments.fewshot.configs import base

REPRODUCES = dict(
    paper="Zintgraf et al. 2019, Fast Context Adaptation via Meta-Learning (arXiv:1810.03642)",
    table="none for Omniglot (classification is reported on miniImageNet only, Table 3)",
    metric="accuracy (%), 95% CI",
    expected={
        "5w1s": "not reported in the paper",
        "5w5s": "not reported in the paper",
        "20w1s": "not reported in the paper",
        "20w5s": "not reported in the paper",
    },
    main="experiments.fewshot.main",
)


def get_config(arg: str | None = None):
  ways, shots, smoke = base.parse(arg)
  method = dict(name="cavia", inner_steps=2,
                inner_optimizer=dict(name="sgd", learning_rate=1.0))
  config = base.omniglot(ways, shots, method=method, head=False)
  config.model = dict(name="context_conv4", num_classes=ways, filters=64,
                      num_context=100, film_blocks=(2,), norm="transductive")
  config.meta_batch_size = 16
  config.eval.inner_steps = 2
  return base.shrink(config) if smoke else config
