r"""Prototypical Networks on Omniglot (Snell et al. 2017, arXiv:1703.05175, Table 1).

Paper (Omniglot, Conv-4, squared Euclidean distance): 5-way 1-shot 98.8, 5-way 5-shot
99.7, 20-way 1-shot 96.0, 20-way 5-shot 98.9. Training as in the paper: 60-way episodes
with the test shot count and 5 queries per class, one episode per step, Adam 1e-3 halved
every 2,000 episodes.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/protonet.py:5w1s \
      --workdir=runs/omniglot_protonet_5w1s
"""

from experiments.fewshot.configs import base

REPRODUCES = dict(
    paper="Snell et al. 2017, Prototypical Networks for Few-shot Learning (arXiv:1703.05175)",
    table="Table 1 (Omniglot, Conv-4, squared Euclidean distance)",
    metric="accuracy (%)",
    expected={
        "5w1s": "98.8",
        "5w5s": "99.7",
        "20w1s": "96.0",
        "20w5s": "98.9",
    },
    main="experiments.fewshot.main",
)


def get_config(arg: str | None = None):
  ways, shots, smoke = base.parse(arg)
  config = base.omniglot(ways, shots, method=dict(name="protonet"), head=True)
  config.data.ways = 60
  config.data.queries = 5
  config.meta_batch_size = 1
  config.num_steps = 20_000
  config.outer_optimizer = dict(name="adam", learning_rate=dict(
      name="exponential_decay", init_value=1e-3, transition_steps=2_000,
      decay_rate=0.5, staircase=True))
  if smoke:
    config = base.shrink(config)
    config.data.ways = 10
  return config
