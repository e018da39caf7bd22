"""Saliency of a meta-learned model before and after adapting to one few-shot task.

MAML (Finn et al. 2017, arXiv:1703.03400) on an MLP is meta-trained on N-way K-shot tasks
over some MNIST digits; on a task of held-out digits, ``explain.adapted_saliency`` gives
the query saliency (Simonyan et al. 2013, arXiv:1312.6034) of the true label's logit
under the meta-parameters and under the adapted task parameters.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments.tools import classifier, metatasks
from metalm.models import functional
from metalm.tools import explain


def run(config, workdir):
  cfg = config.explain.adapted
  train = metatasks.class_arrays("train", per_class=cfg.per_class, digits=cfg.train_digits)
  test = metatasks.class_arrays("test", per_class=cfg.per_class, digits=cfg.test_digits)
  model, learn = metatasks.learner(cfg)
  train_sampler, test_sampler = metatasks.samplers([train, test], cfg, config.seed)
  key = jax.random.key(config.seed + 4)
  state = metatasks.meta_train(learn, [train_sampler], cfg, key=key,
                               log=(workdir, "maml_digits"))
  params, model_state = state.params, state.model_state
  evaluation = metatasks.evaluator(learn)(params, model_state, test_sampler,
                                  cfg.eval_episodes, jax.random.fold_in(key, 1))

  task = jax.tree.map(lambda a: jnp.asarray(a[0]), test_sampler.batch(10_000, 1))
  n = min(cfg.num_examples, task.query_x.shape[0])
  # One query of each label first, then the rest, so every class shows up.
  order = np.argsort(np.arange(task.query_x.shape[0]) % cfg.queries, kind="stable")[:n]
  query_x, query_y = task.query_x[order], task.query_y[order]
  adapt_key = jax.random.fold_in(key, 2)

  @jax.jit
  def explain_task(params, model_state, task, query_x, query_y):
    before, after = explain.adapted_saliency(learn, model, params, model_state, task.support,
                                             query_x, query_y, adapt_key)
    task_params, task_state = learn.adapt(params, model_state, task.support,
                                          jax.random.split(adapt_key)[0])
    predict = lambda p, s: functional.predict_query(model, p, s, task.support.x,
                                                    task.query_x)[0]
    return (before, after, jnp.argmax(predict(params, model_state), -1),
            jnp.argmax(predict(task_params, task_state), -1))

  before, after, pred_before, pred_after = map(
      np.asarray, explain_task(params, model_state, task, query_x, query_y))
  y = np.asarray(task.query_y)
  png = draw(os.path.join(workdir, "adapted_saliency.png"), np.asarray(query_x),
             np.asarray(query_y), pred_before[order], pred_after[order],
             np.asarray(before), np.asarray(after), cfg)
  return {
      "method": f"maml (1 model, {cfg.inner_steps} inner SGD step(s) at "
                f"{cfg.inner_learning_rate:g})",
      "ways": cfg.ways, "shots": cfg.shots, "queries": cfg.queries,
      "train_digits": list(cfg.train_digits), "test_digits": list(cfg.test_digits),
      "meta_steps": cfg.meta_steps, "meta_batch_size": cfg.meta_batch_size,
      "heldout_accuracy": evaluation,
      "explained_task": {"query_accuracy_before": float(100 * np.mean(pred_before == y)),
                         "query_accuracy_after": float(100 * np.mean(pred_after == y)),
                         "num_explained": int(n),
                         "saliency_change": float(np.abs(np.asarray(after - before)).sum()
                                                  / max(np.abs(np.asarray(before)).sum(),
                                                        1e-12))},
      "pngs": [os.path.basename(png)],
  }


def draw(path, x, y, pred_before, pred_after, before, after, cfg) -> str:
  """Rows: queries; columns: the digit, saliency before and after adaptation."""
  rows = x.shape[0]
  fig = Figure(figsize=(5.0, 1.7 * rows))
  axes = fig.subplots(rows, 3, squeeze=False)
  for r in range(rows):
    axes[r, 0].imshow(x[r].reshape(classifier.IMAGE_SHAPE), cmap="gray_r")
    axes[r, 0].set_title(f"query, label {y[r]}", fontsize=7)
    for c, (name, attr, pred) in enumerate(
        (("before", before, pred_before), ("after", after, pred_after)), start=1):
      a = attr[r].reshape(classifier.IMAGE_SHAPE)
      bound = float(np.abs(a).max()) or 1.0
      axes[r, c].imshow(a, cmap="bwr", vmin=-bound, vmax=bound)
      axes[r, c].set_title(f"{name} adaptation (pred {pred[r]})", fontsize=7)
  for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(f"MAML {cfg.ways}-way {cfg.shots}-shot, held-out digits "
               f"{tuple(cfg.test_digits)}: saliency of the label's logit", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  return path
