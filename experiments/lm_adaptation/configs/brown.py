r"""Language-model adaptation to unseen Brown corpus genres: MAML, Reptile or pretraining.

Tasks are genres (``metalm.data.brown``: 10 meta-train, 2 meta-val, 3 meta-test); a
byte-level decoder LM (2 layers, 128 wide, 128 tokens) learns an initialization that
adapts to a genre from K = 5 sentences. The argument picks how the initialization is
trained:

* ``maml``: second-order MAML (Finn et al. 2017, arXiv:1703.03400), 3 inner SGD steps
  (rate 0.1) on the support sentences, Adam 1e-3 outside.
* ``reptile``: Reptile (Nichol et al. 2018, arXiv:1803.02999), 5 inner SGD steps (rate
  0.1) on all K + Q sentences of a task; the Reptile direction goes to Adam 1e-3.
* ``pretrain``: the baseline, ordinary multi-genre training: zero inner steps, so each
  step is plain Adam 1e-3 on the next-token loss of K + Q sentences of each of 4 genres.

All three are evaluated alike: on each meta-test genre, the query perplexity of
``config.eval.episodes`` episodes before adaptation and after SGD fine-tuning on the K
support sentences, its rate (0.01 to 0.3) and step count (1, 3 or 10) chosen for each
initialization by the perplexity on the meta-val genres (``config.eval.select``; empty
grids keep ``config.eval.inner_optimizer`` and ``inner_steps``).

  python -m experiments.lm_adaptation.main \
      --config=experiments/lm_adaptation/configs/brown.py:maml \
      --workdir=runs/lm_adaptation_brown_maml

Arguments: ``maml``, ``reptile`` or ``pretrain``, optionally with ``,smoke``. Subword
tokens: ``--config.tokenizer.name=bpe --config.tokenizer.vocab_size=1024``.
"""

import ml_collections

REPRODUCES = dict(
    paper="metalm baseline (no paper figure)",
    table="none: Brown corpus genres as language-modelling tasks (5-sentence adaptation)",
    metric="held-out-genre perplexity before/after adaptation",
    expected={"maml": "not reported in the paper",
              "reptile": "not reported in the paper",
              "pretrain": "not reported in the paper"},
    main="experiments.lm_adaptation.main",
)
INNER_OPTIMIZER = dict(name="sgd", learning_rate=0.1)
METHODS = {
    "maml": dict(name="maml", inner_steps=3, inner_optimizer=INNER_OPTIMIZER),
    "reptile": dict(name="reptile", inner_steps=5, include_query=True,
                    inner_optimizer=INNER_OPTIMIZER),
    "pretrain": dict(name="maml", inner_steps=0),
}


def parse(arg: str | None) -> tuple[str, bool]:
  """``"reptile,smoke"`` -> ``("reptile", True)``; names the bad part of a bad one."""
  parts = set(filter(None, (arg or "").split(",")))
  names, unknown = parts & set(METHODS), parts - set(METHODS) - {"smoke"}
  if unknown or len(names) != 1:
    raise ValueError(f"Bad config argument {arg!r}: name one of {sorted(METHODS)}, "
                     "optionally with ',smoke'.")
  return names.pop(), "smoke" in parts


def get_config(arg: str | None = "maml") -> ml_collections.ConfigDict:
  name, smoke = parse(arg)
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.variant = name
  config.method = METHODS[name]
  # vocab_size 0: the tokenizer's (261 for bytes: 256 bytes and 5 special tokens).
  config.model = dict(kind="decoder", vocab_size=0, dim=128, depth=2, num_heads=4,
                      tie_embeddings=True)
  config.data = dict(data_dir="", max_len=128, shots=5, queries=10, train_queries=10)
  # "byte" (vocab_size 0), or "bpe" with vocab_size >= 261: byte-level BPE trained on the
  # meta-train genres' sentences, kept in <workdir>/tokenizer.json.
  config.tokenizer = dict(name="byte", vocab_size=0)
  config.outer_optimizer = dict(name="adam", learning_rate=1e-3)
  config.meta_batch_size = 4
  config.num_steps = 3_000
  config.log_every = 50
  config.checkpoint_every = 500
  config.max_checkpoints = 3
  config.eval = dict(split="test", episodes=100, shots=5, queries=10, inner_steps=10,
                     inner_optimizer=INNER_OPTIMIZER, seed=1, batch_episodes=25,
                     select=dict(split="val", learning_rates=(0.01, 0.03, 0.1, 0.3),
                                 inner_steps=(1, 3, 10), episodes=20))
  config = shrink(config) if smoke else config
  if name == "pretrain":
    # Without a support set to adapt on, the baseline trains on K + Q sentences of each
    # task, as many as the meta-learners see.
    config.data.train_queries = config.data.shots + config.data.queries
  return config


def shrink(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``smoke`` variant: same code paths, seconds on a CPU."""
  config.model.update(dim=16, depth=1, num_heads=2)
  config.data.update(max_len=32, queries=2, train_queries=2)
  if config.method.inner_steps:
    config.method.inner_steps = 1
  config.meta_batch_size = 2
  config.num_steps = 3
  config.log_every = 1
  config.checkpoint_every = 2
  config.eval.update(episodes=4, queries=2, inner_steps=2, batch_episodes=4)
  config.eval.select.update(learning_rates=(0.1, 0.3), inner_steps=(2,), episodes=4)
  return config
