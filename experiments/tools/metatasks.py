"""Few-shot tasks over MNIST for the tool studies: class-indexed arrays, MAML, episodes.

An N-way K-shot task draws N digit classes (``metalm.data.episodic``), optionally from one
rotation angle of MNIST (a domain); the learner is MAML (Finn et al. 2017,
arXiv:1703.03400) on the library's MLP, whose ``adapt`` returns model parameters, so
``metalm.tools.explain.adapted_saliency`` can explain it before and after adaptation.
"""

import jax
import ml_collections
import numpy as np
import optax
from absl import logging
from scipy import ndimage

from experiments.tools import classifier
from metalm import losses, meta, models
from metalm.data import episodic, mnist
from metalm.eval import episodic as episodic_eval
from metalm.meta import base


def class_arrays(split: str, *, per_class: int, angle: float = 0.0,
                 digits=tuple(range(10))) -> np.ndarray:
  """``[len(digits), per_class, 784]`` float32 images of each digit (rotated by ``angle``)."""
  arrays = mnist.load("mnist", split)
  labels = np.asarray(arrays.labels)
  rows = np.stack([np.flatnonzero(labels == d)[:per_class] for d in digits])
  images = np.asarray(arrays.images[rows.reshape(-1)], np.float32) / 255.0  # Only these.
  if angle:
    images = np.clip(ndimage.rotate(images, angle, axes=(1, 2), reshape=False, order=1), 0, 1)
  images = images.reshape(*rows.shape, classifier.NUM_FEATURES)
  return images


def learner(cfg):
  """``(model, MAML learner)``: MLP ``784 -> cfg.hidden -> cfg.ways``, SGD inner loop."""
  model = models.build(ml_collections.ConfigDict(dict(
      name="mlp", hidden=tuple(cfg.hidden), num_outputs=cfg.ways, norm="none")),
      (1, classifier.NUM_FEATURES))
  method = ml_collections.ConfigDict(dict(
      name="maml", inner_steps=cfg.inner_steps,
      inner_optimizer=dict(name="sgd", learning_rate=cfg.inner_learning_rate)))
  return model, meta.build(method, model, loss_fn=losses.cross_entropy, num_ways=cfg.ways)


def samplers(arrays_by_domain, cfg, seed: int):
  """One N-way K-shot sampler per domain (class-indexed array)."""
  return [episodic.sampler(a, ways=cfg.ways, shots=cfg.shots, queries=cfg.queries,
                           seed=seed + i) for i, a in enumerate(arrays_by_domain)]


def batch(domain_samplers, step: int, num_tasks: int):
  """``num_tasks`` tasks of ``step``; task ``t`` comes from domain ``(step*T + t) % D``."""
  tasks = []
  for t in range(num_tasks):
    which = (step * num_tasks + t) % len(domain_samplers)
    tasks.append(domain_samplers[which].batch(step * num_tasks + t, 1))
  return jax.tree.map(lambda *a: np.concatenate(a), *tasks)


def meta_train(learn, domain_samplers, cfg, *, key, log=None):
  """``cfg.meta_steps`` Adam outer steps of meta-batch ``cfg.meta_batch_size``.

  Returns the ``base.MetaTrainState``; with ``log=(workdir, name)`` the mean loss of every
  50 steps goes to ``metrics.jsonl`` and TensorBoard.
  """
  init_key, key = jax.random.split(key)
  tx = optax.adam(cfg.meta_learning_rate)
  state = jax.jit(lambda k: base.init_train_state(learn, tx, k))(init_key)
  step_fn = jax.jit(lambda s, t, k: base.meta_step(learn, tx, s, t, k))
  losses_, chunk = [], 50
  for step in range(cfg.meta_steps):
    tasks = batch(domain_samplers, step, cfg.meta_batch_size)
    state, metrics = step_fn(state, tasks, jax.random.fold_in(key, step))
    losses_.append(float(metrics["loss"]))
  if log is not None and losses_:
    chunks = [float(np.mean(losses_[i:i + chunk])) for i in range(0, len(losses_), chunk)]
    classifier.write_losses(*log, chunks, chunk)
  if losses_:
    logging.info("Meta-trained %d steps; mean loss of the last %d: %.4f", cfg.meta_steps,
                 min(chunk, len(losses_)), np.mean(losses_[-chunk:]))
  return state


def evaluator(learn):
  """``evaluate`` for this learner with one jitted function (compiled once per shape)."""
  per_task = jax.jit(lambda p, s, t, k: episodic_eval.per_task(learn, p, s, t, k))
  return lambda *args: evaluate(per_task, *args)


def evaluate(per_task, params, model_state, domain_sampler, episodes: int, key):
  """Query accuracy (%) after adaptation over ``episodes`` tasks, with its 95% CI."""
  tasks = domain_sampler.batch(0, episodes)
  values = per_task(params, model_state, tasks, key)
  mean, ci95 = episodic_eval.confidence_interval(np.asarray(values["accuracy"]))
  return {"accuracy": 100 * mean, "ci95": 100 * ci95, "episodes": episodes}
