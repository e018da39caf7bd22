"""Meta-learned language-model adaptation: Brown corpus genres as tasks.

  python -m experiments.lm_adaptation.main \
      --config=experiments/lm_adaptation/configs/brown.py:maml \
      --workdir=runs/lm_adaptation_brown_maml

Trains a byte-level ``metalm.lm.transformer.DecoderLM`` initialization on the meta-train
genres of ``metalm.data.brown`` (MAML, Reptile, or the multi-genre pretraining baseline,
all through ``metalm.train.loop.train``), then, on every held-out genre, measures the
perplexity of query sentences before adaptation and after fine-tuning on K support
sentences. The fine-tuning is chosen the same way for every method: the rate and step
count of ``config.eval.select``'s grid with the lowest perplexity on the meta-validation
genres, so the baseline gets an adaptation as well tuned as the meta-learned ones. ``results.json``
holds per-genre and pooled perplexities with 95% CIs over episodes. Re-running the same
command resumes from the last checkpoint in --workdir.

Subword tokens instead of bytes: ``--config.tokenizer.name=bpe
--config.tokenizer.vocab_size=1024`` trains byte-level BPE on the meta-train genres'
sentences only, saves it as ``<workdir>/tokenizer.json`` (read back on resume) and sizes
the LM's vocabulary from it.
"""

import json
import os
import time

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments.lm_adaptation.configs import brown as reference
from metalm import meta
from metalm.data import brown
from metalm.eval import episodic as episodic_eval
from metalm.eval import plots
from metalm.lm import losses, tokenizers, transformer
from metalm.meta import maml
from metalm.train import config_check, distributed, loop, optim

CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)


def build_model(config: ml_collections.ConfigDict):
  return transformer.lm_model({**config.model.to_dict(), "seq_len": config.data.max_len})


def load_data(config, workdir):
  """The run's tokenizer and the Brown splits encoded with it.

  The tokenizer is ``tokenizers.for_run(config.tokenizer, ...)``: BPE is trained on the
  meta-train genres' sentences only and saved to ``<workdir>/tokenizer.json``, or read
  back from there on resume. ``config.model.vocab_size`` (0: unset) is set to its size.

  Returns:
    ``(tokenizer, splits)``.
  """
  data = config.data
  byte_splits = []

  def train_texts():  # Only called to train BPE.
    byte_splits.append(brown.load(data.data_dir or None, max_len=data.max_len))
    return [text for texts in byte_splits[0].train.texts for text in texts]

  tokenizer = tokenizers.for_run(config.tokenizer, train_texts, workdir)
  configured = config.model.vocab_size
  if configured not in (0, tokenizer.vocab_size):
    raise ValueError(
        f"config.model.vocab_size={configured} but the tokenizer (config.tokenizer) has "
        f"{tokenizer.vocab_size} ids; leave config.model.vocab_size at 0: it is set from "
        "the tokenizer.")
  config.model.vocab_size = tokenizer.vocab_size
  if byte_splits and not tokenizer.merges:
    return tokenizer, byte_splits[0]
  return tokenizer, brown.load(data.data_dir or None, max_len=data.max_len,
                               tokenizer=tokenizer)


def evaluate(config, model, state, split, *, episodes=None, inner_optimizer=None,
             inner_steps=None) -> dict:
  """Query perplexity per held-out genre, before and after fine-tuning on the support.

  Each genre gets ``episodes`` (``config.eval.episodes``) episodes of K support and Q
  query sentences; an episode's perplexity is ``exp`` of its mean next-token loss on the
  query tokens. The fine-tuning is ``inner_steps`` steps of ``inner_optimizer`` (by
  default ``config.eval``'s).

  Returns:
    ``{"genres": {genre: {"before"|"after": {"mean", "ci95"}}}, "before": ...,
    "after": ...}``, the last two pooled over every episode of every genre.
  """
  ev = config.eval.copy_and_resolve_references()
  ev.unlock()
  ev.episodes = episodes or ev.episodes
  ev.inner_optimizer = inner_optimizer or ev.inner_optimizer
  ev.inner_steps = ev.inner_steps if inner_steps is None else inner_steps
  tx = optim.build(ev.inner_optimizer, "config.eval.inner_optimizer")
  learners = {"before": maml.maml(model, losses.lm_loss, inner_tx=tx, inner_steps=0),
              "after": maml.maml(model, losses.lm_loss, inner_tx=tx,
                                 inner_steps=ev.inner_steps)}
  per_task = {
      when: jax.jit(lambda p, s, t, k, learner=learner: episodic_eval.per_task(
          learner, p, s, t, k, batch_size=ev.batch_episodes))
      for when, learner in learners.items()}
  sampler = brown.sampler(split.tokens, shots=ev.shots, queries=ev.queries, seed=ev.seed)
  pooled = {when: [] for when in learners}
  genres = {}
  for g, genre in enumerate(split.names):
    tasks = sampler.genre_batch(g, 0, ev.episodes)
    key = jax.random.fold_in(jax.random.key(ev.seed), g)
    genres[genre] = {}
    for when, fn in per_task.items():
      values = np.asarray(fn(state.params, state.model_state, tasks, key)["perplexity"])
      pooled[when].append(values)
      mean, ci95 = episodic_eval.confidence_interval(values)
      genres[genre][when] = {"mean": mean, "ci95": ci95}
  out = {"genres": genres}
  for when, values in pooled.items():
    mean, ci95 = episodic_eval.confidence_interval(np.concatenate(values))
    out[when] = {"mean": mean, "ci95": ci95}
  return out


def select_fine_tuning(config, model, state, split) -> dict:
  """The fine-tuning rate and step count with the lowest query perplexity after
  adaptation on the meta-validation genres (``config.eval.select``'s grid).

  Returns:
    ``{"learning_rate", "inner_steps", "grid": {"<rate>,<steps>": perplexity}}``; the
    config's own fine-tuning when the grid is empty.
  """
  grid_config = config.eval.select
  base = config.eval.inner_optimizer.to_dict()
  if not grid_config.learning_rates or not grid_config.inner_steps:
    return {"learning_rate": base["learning_rate"],
            "inner_steps": config.eval.inner_steps, "grid": {}}
  grid = {}
  for rate in grid_config.learning_rates:
    for steps in grid_config.inner_steps:
      out = evaluate(config, model, state, split, episodes=grid_config.episodes,
                     inner_optimizer=ml_collections.ConfigDict({**base,
                                                                "learning_rate": rate}),
                     inner_steps=steps)
      grid[f"{rate},{steps}"] = out["after"]["mean"]
      logging.info("Fine-tuning on %s genres with rate %g for %d steps: perplexity %.3f",
                   config.eval.select.split, rate, steps, grid[f"{rate},{steps}"])
  best = min(grid, key=grid.get)
  rate, steps = best.split(",")
  return {"learning_rate": float(rate), "inner_steps": int(steps), "grid": grid}


def main(argv):
  del argv
  distributed.initialize_from_env()
  config, workdir = CONFIG.value, WORKDIR.value
  config_check.check_fields(config, reference.get_config("maml"),
                            free=("method", "model", "outer_optimizer"))
  tokenizers.check_config(config.tokenizer)
  start = time.perf_counter()
  data = config.data
  tokenizer, splits = load_data(config, workdir)
  model = build_model(config)
  learner = meta.build(config.method, model, loss_fn=losses.lm_loss)
  state = loop.train(
      config, workdir, learner=learner,
      outer_tx=optim.build(config.outer_optimizer, "config.outer_optimizer"),
      sampler=brown.sampler(splits.train.tokens, shots=data.shots,
                            queries=data.train_queries, seed=config.seed))
  ev = config.eval
  fine_tuning = select_fine_tuning(config, model, state, getattr(splits, ev.select.split))
  perplexity = evaluate(
      config, model, state, getattr(splits, ev.split),
      inner_optimizer=ml_collections.ConfigDict(
          {**ev.inner_optimizer.to_dict(), "learning_rate": fine_tuning["learning_rate"]}),
      inner_steps=fine_tuning["inner_steps"])
  logging.info("%s: %s-genre query perplexity over %d episodes per genre, before %.2f +- "
               "%.2f, after %d steps on %d sentences %.2f +- %.2f", config.variant,
               ev.split, ev.episodes, perplexity["before"]["mean"],
               perplexity["before"]["ci95"], fine_tuning["inner_steps"], ev.shots,
               perplexity["after"]["mean"], perplexity["after"]["ci95"])
  results = {"method": config.variant, "learner": config.method.name, "dataset": "brown",
             "eval_split": ev.split, "shots": ev.shots, "queries": ev.queries,
             "episodes_per_genre": ev.episodes, "inner_steps": fine_tuning["inner_steps"],
             "fine_tuning": {"selected_on": ev.select.split, **fine_tuning},
             "genres": {name: list(split.names) for name, split in splits._asdict().items()},
             "sentences": {name: [len(t) for t in split.tokens]
                           for name, split in splits._asdict().items()},
             "vocab_size": tokenizer.vocab_size, "step": int(state.step),
             "perplexity": perplexity,
             "wall_clock_s": time.perf_counter() - start,
             "config": json.loads(config.to_json())}
  results["compute"] = loop.compute_summary(workdir)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  if jax.process_index() == 0:
    plots.to_tensorboard(workdir, int(state.step), [plots.learning_curves(workdir)])


if __name__ == "__main__":
  app.run(main)
