r"""CoNLL-2000 POS tagging + chunking, POS supervised at a lower bi-LSTM layer.

Søgaard & Goldberg 2016, "Deep multi-task learning with low level tasks supervised at
lower layers" (ACL, P16-2038, Table 1: CoNLL-2000 chunking F1 with POS at the inner-
or outermost layer): a 3-layer bi-LSTM over word embeddings, POS predicted from layer 1
and chunks from layer 3. Our training (Adam 1e-3, batch 32, 10 epochs of the 8,936
training sentences, randomly initialized 64-d embeddings, 100 units per direction) is
ours, not the paper's; scores: POS accuracy and chunk F1 (conlleval) on the 2,012 test
sentences. Any balancer:

  python -m experiments.multitask.main \
      --config=experiments/multitask/configs/conll2000.py:equal_weighting \
      --workdir=runs/conll2000_ew

Arguments: a balancer name (``equal_weighting`` by default), ``outer`` (POS at the top
layer too, the paper's other variant), ``transformer`` (a 3-block pre-LayerNorm
transformer, width 128, rotary positions, in place of the bi-LSTM; its attention is
picked by ``--config.model.attention.name=`` from ``metalm.lm.attention``: ``full``,
``window`` (sliding window with global tokens), ``favor`` or ``lsh``, whose options are
the group's other fields), optionally ``,smoke``.
"""

import ml_collections

from experiments.multitask.configs import base

STEPS_PER_EPOCH = 8936 // 32


REPRODUCES = dict(
    paper=("Søgaard & Goldberg 2016, Deep multi-task learning with low level tasks supervised at "
           "lower layers (ACL 2016, P16-2038)"),
    table=("Table 1 (CoNLL-2000 chunking; POS supervised at the inner layer, or with 'outer' at "
           "the outermost)"),
    metric="chunking F1",
    expected={
        "equal_weighting": "in the paper, not transcribed here",
        "equal_weighting,outer": "in the paper, not transcribed here",
        "equal_weighting,transformer": "not in the paper (a transformer in place of its bi-LSTM)",
    },
    main="experiments.multitask.main",
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  balancer, smoke, variants = base.parse(arg, variants=("outer", "transformer"))
  config = base.common("conll2000", balancer)
  config.data = dict(data_dir="", max_len=0, lowercase=False, min_count=1, num_train=0,
                     num_test=0)
  config.model = dict(trunk="bilstm", embed_dim=64, hidden=100, num_layers=3, num_heads=4,
                      attention=base.attention(),
                      pos_layer=3 if "outer" in variants else 1, chunk_layer=3)
  if "transformer" in variants:
    config.model.update(trunk="transformer", embed_dim=128, hidden=256)
  config.batch_size = 32
  config.num_steps = 10 * STEPS_PER_EPOCH
  config.log_every = 50
  config.checkpoint_every = STEPS_PER_EPOCH
  config.eval.batch_size = 256
  if smoke:
    config = base.shrink(config)
    config.data.num_train, config.data.num_test = 64, 32
    config.model.update(embed_dim=8, hidden=8, num_layers=2, num_heads=2, chunk_layer=2)
  return config
