"""Few-shot text classification: meta-train on episodes, test on held-out classes.

  python -m experiments.fewshot_text.main \
      --config=experiments/fewshot_text/configs/protonet.py:clinc150,5w1s \
      --workdir=runs/clinc150_protonet_5w1s

The data sets (``metalm.data.clinc150``, ``trec``, ``fewrel``, ``reuters21578``) are
tokenized into UTF-8 bytes and split by class; the model is ``transformer_encoder``.
Subword tokens instead: ``--config.tokenizer.name=bpe --config.tokenizer.vocab_size=1024``
trains byte-level BPE on the meta-train texts only and saves it as
``<workdir>/tokenizer.json`` (read back on resume and by ``metalm.eval.adapt.load``).
With ``--config.pretrain.steps=N`` the encoder is first trained as a masked language
model on the meta-train texts (``metalm.lm.pretrain``; kept as
``<workdir>/pretrained_encoder.npz``) and meta-learning starts from it.
The flags, the evaluation (accuracy with 95% CI on ``config.eval.episodes`` episodes)
and the training loop are those of ``experiments.fewshot.main``. Re-running the same
command resumes from the last checkpoint in --workdir.
"""

import json
import os
import time
import types

from absl import app, logging

from experiments.fewshot import main as fewshot
from experiments.fewshot_text.configs import base as reference
from experiments.fewshot_text.pipeline import load_data, pretrained_encoder, set_vocab_size
from metalm import losses, meta, models, validate
from metalm.data import episodic
from metalm.lm import pretrain, tokenizers
from metalm.train import config_check, distributed, loop, optim


def main(argv):
  del argv
  distributed.initialize_from_env()
  config, workdir = fewshot.CONFIG.value, fewshot.WORKDIR.value
  config_check.check_fields(
      config, reference.text("clinc150", 5, 1, method={}, head=False),
      free=("method", "model", "outer_optimizer"))
  tokenizers.check_config(config.tokenizer)
  start = time.perf_counter()
  data = config.data
  tokenizer, splits = load_data(config, workdir)
  set_vocab_size(config, tokenizer)
  model = models.build(config.model, (1, data.max_len))
  learner = meta.build(config.method, model, loss_fn=losses.cross_entropy,
                       num_ways=data.ways)
  pretrain_losses = []
  if config.pretrain.steps:
    encoder, pretrain_losses = pretrained_encoder(config, splits, workdir)
    learner = learner._replace(init=pretrain.with_encoder(learner.init, encoder))
  # fewshot.evaluator reads ``<split>.images``: the per-class token arrays here.
  views = types.SimpleNamespace(**{name: types.SimpleNamespace(images=split.tokens)
                                   for name, split in splits._asdict().items()})
  evaluate = fewshot.evaluator(config, model, views)
  every = validate.integer(config.eval.every, "config.eval.every", minimum=0)
  state = loop.train(
      config, workdir, learner=learner,
      outer_tx=optim.build(config.outer_optimizer, "config.outer_optimizer"),
      sampler=episodic.sampler(splits.train.tokens, ways=data.ways, shots=data.shots,
                               queries=data.queries, seed=config.seed),
      hooks=[fewshot.accuracy_curve(config, workdir, evaluate)] if every else [],
  )
  ev = config.eval
  accuracy, ci95 = evaluate(state, ev.split)
  fewshot.record_evaluation(config, workdir, int(state.step), ev.split, accuracy, ci95)
  logging.info("%s on %s, %d-way %d-shot accuracy on %d %s episodes: %.2f +- %.2f%%",
               config.method.name, data.dataset, ev.ways, ev.shots, ev.episodes, ev.split,
               accuracy, ci95)
  results = {"method": config.method.name, "dataset": data.dataset, "split": data.split,
             "eval_split": ev.split, "ways": ev.ways, "shots": ev.shots,
             "classes": {name: len(split.names) for name, split in splits._asdict().items()},
             "eval_classes": list(getattr(splits, ev.split).names),
             "norm": model.norm, "vocab_size": tokenizer.vocab_size,
             "pretrain": {"steps": config.pretrain.steps, "losses": pretrain_losses[:1]
                          + pretrain_losses[-1:]},
             "step": int(state.step), "accuracy": accuracy, "ci95": ci95,
             "wall_clock_s": time.perf_counter() - start,
             "config": json.loads(config.to_json())}
  results["compute"] = loop.compute_summary(workdir)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  fewshot.write_plots(config, workdir, int(state.step), accuracy, ci95)


if __name__ == "__main__":
  app.run(main)
