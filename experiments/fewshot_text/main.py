"""Few-shot text classification: meta-train on episodes, test on held-out classes.

  python -m experiments.fewshot_text.main \
      --config=experiments/fewshot_text/configs/protonet.py:clinc150,5w1s \
      --workdir=runs/clinc150_protonet_5w1s

The data sets (``metalm.data.clinc150``, ``trec``, ``fewrel``, ``reuters21578``) are
tokenized into UTF-8 bytes and split by class; the model is ``transformer_encoder``.
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
from metalm import losses, meta, models, registry
from metalm.data import clinc150, episodic, fewrel, reuters21578, trec
from metalm.train import config_check, distributed, loop, optim

DATASETS = {"clinc150": clinc150.load, "trec": trec.load, "fewrel": fewrel.load,
            "reuters21578": reuters21578.load}


def load_splits(data):
  """The data set's ``TextSplits`` at ``data.max_len`` tokens (``data.split`` if set)."""
  loader = registry.lookup("dataset in config.data.dataset", data.dataset, DATASETS)
  options = {"split": data.split} if data.split else {}
  return loader(data.data_dir or None, max_len=data.max_len, **options)


def main(argv):
  del argv
  distributed.initialize_from_env()
  config, workdir = fewshot.CONFIG.value, fewshot.WORKDIR.value
  config_check.check_fields(
      config, reference.text("clinc150", 5, 1, method={}, head=False),
      free=("method", "model", "outer_optimizer"))
  start = time.perf_counter()
  data = config.data
  splits = load_splits(data)
  model = models.build(config.model, (1, data.max_len))
  learner = meta.build(config.method, model, loss_fn=losses.cross_entropy,
                       num_ways=data.ways)
  state = loop.train(
      config, workdir, learner=learner,
      outer_tx=optim.build(config.outer_optimizer, "config.outer_optimizer"),
      sampler=episodic.sampler(splits.train.tokens, ways=data.ways, shots=data.shots,
                               queries=data.queries, seed=config.seed),
  )
  # fewshot.evaluate reads ``<split>.images``: the per-class token arrays here.
  views = types.SimpleNamespace(**{name: types.SimpleNamespace(images=split.tokens)
                                   for name, split in splits._asdict().items()})
  accuracy, ci95 = fewshot.evaluate(config, model, state, views)
  ev = config.eval
  logging.info("%s on %s, %d-way %d-shot accuracy on %d %s episodes: %.2f +- %.2f%%",
               config.method.name, data.dataset, ev.ways, ev.shots, ev.episodes, ev.split,
               accuracy, ci95)
  results = {"method": config.method.name, "dataset": data.dataset, "split": data.split,
             "eval_split": ev.split, "ways": ev.ways, "shots": ev.shots,
             "classes": {name: len(split.names) for name, split in splits._asdict().items()},
             "eval_classes": list(getattr(splits, ev.split).names),
             "norm": model.norm, "step": int(state.step), "accuracy": accuracy,
             "ci95": ci95, "wall_clock_s": time.perf_counter() - start,
             "config": json.loads(config.to_json())}
  results["compute"] = loop.compute_summary(workdir)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  fewshot.write_plots(config, workdir, int(state.step), accuracy, ci95)


if __name__ == "__main__":
  app.run(main)
