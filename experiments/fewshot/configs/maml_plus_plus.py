r"""MAML++ on Omniglot (Antoniou et al. 2019, arXiv:1810.09502, Table 1).

Paper (Omniglot, Conv-4 with 64 filters): 5-way 1-shot 99.47, 5-way 5-shot 99.93,
20-way 1-shot 97.65 +- 0.05, 20-way 5-shot 99.33 +- 0.03. Training as in the authors'
released Omniglot configs (HowToTrainYourMAMLPytorch, experiment_config/
omniglot_maml++-omniglot_*): 5 inner steps at training and test time, per-layer
per-step learned inner rates (LSLR) starting at 0.1, multi-step loss annealed over
10 epochs, per-step BatchNorm weights and statistics with BatchNorm not adapted in the
inner loop, second order throughout (their first_order_to_second_order_epoch=-1; set
``first_order_epochs`` for derivative-order annealing), Adam 1e-3 cosine-annealed to
1e-5, meta-batch 8, 100 epochs of 500 steps, one query example per class. Their cosine
schedule steps once per epoch; here it moves every step.

  python -m experiments.fewshot.main \
      --config=experiments/fewshot/configs/maml_plus_plus.py:5w1s \
      --workdir=runs/omniglot_maml_plus_plus_5w1s

Arguments: one of 5w1s, 5w5s, 20w1s, 20w5s, optionally ",smoke".
"""

from experiments.fewshot.configs import base

STEPS_PER_EPOCH = 500
EPOCHS = 100


REPRODUCES = dict(
    paper="Antoniou et al. 2019, How to train your MAML (arXiv:1810.09502)",
    table="Table 1 (Omniglot, Conv-4 with 64 filters)",
    metric="accuracy (%), ± where reported",
    expected={
        "5w1s": "99.47",
        "5w5s": "99.93",
        "20w1s": "97.65 ± 0.05",
        "20w5s": "99.33 ± 0.03",
    },
    main="experiments.fewshot.main",
)


def get_config(arg: str | None = None):
  ways, shots, smoke = base.parse(arg)
  method = dict(name="maml_plus_plus", inner_steps=5, learn_rates=True, init_lr=0.1,
                multi_step_loss=True, msl_epochs=10, per_step_bn=True, adapt_bn=False,
                first_order_epochs=0, steps_per_epoch=STEPS_PER_EPOCH)
  config = base.omniglot(ways, shots, method=method, head=False)
  config.num_steps = EPOCHS * STEPS_PER_EPOCH
  config.outer_optimizer = dict(
      name="adam", learning_rate=dict(name="cosine_decay", init_value=1e-3,
                                      decay_steps=config.num_steps, alpha=1e-2))
  config.meta_batch_size = 8
  config.data.queries = 1
  config.eval.queries = 1
  config.eval.inner_steps = 5
  return base.shrink(config) if smoke else config
