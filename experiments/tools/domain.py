"""Rotated MNIST: source-only vs. DANN accuracy on the rotated target domain.

Ganin et al. 2016, arXiv:1505.07818. The first half of the training images is the labeled
source (upright); the second half, rotated by ``target_angle`` and without labels, is the
target; accuracy is measured on the rotated test set.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.tools import classifier
from metalm.eval import plots
from metalm.tools import domain


def run(config, workdir, train, test_limit: int):
  cfg, base = config.domain, config.classifier
  half = len(train[0]) // 2
  source = (train[0][:half], train[1][:half])
  target_x, _ = classifier.load_split("train", angle=cfg.target_angle)
  target_x = target_x[half:len(train[0])]
  test = classifier.load_split("test", limit=test_limit, angle=cfg.target_angle)
  keys = jax.random.split(jax.random.key(config.seed + 3), 3)
  params = {"classifier": classifier.init(base.hidden, keys[0]),
            "domain": classifier.init(cfg.domain_hidden, keys[1], num_outputs=2,
                                      inputs=base.hidden[-1])}
  fit = lambda loss, p, data, **kw: classifier.fit(
      loss, p, data, steps=cfg.steps, batch_size=base.batch_size,
      learning_rate=base.learning_rate, key=keys[2], **kw)
  source_only = fit(lambda p, x, y, k: classifier.cross_entropy(p, x, y),
                    params["classifier"], source, log=(workdir, "source_only"))

  # Mixed batches: index i < half is source (labeled), i >= half is target.
  mixed = (np.concatenate([source[0], target_x]),
           np.concatenate([source[1], np.full(len(target_x), -1, np.int32)]))
  def dann(p, x, y, k, progress):
    del k
    loss, _ = domain.dann_loss(
        classifier.features(p["classifier"], x), jnp.maximum(y, 0), (y < 0).astype(jnp.int32),
        task_head=lambda h: classifier.head(p["classifier"], h),
        domain_head=lambda h: classifier.logits(p["domain"], h),
        reversal_scale=cfg.max_reversal * domain.reversal_schedule(progress, cfg.gamma))
    return loss

  adapted = fit(dann, params, mixed, with_progress=True, log=(workdir, "dann"))["classifier"]
  acc = {}
  for name, p in (("source_only", source_only), ("dann", adapted)):
    acc[name] = {
        "source_test": classifier.accuracy(lambda z, p=p: classifier.logits(p, z),
                                           *classifier.load_split("test", limit=test_limit)),
        "target_test": classifier.accuracy(lambda z, p=p: classifier.logits(p, z), *test)}
  n = len(test[0])
  png = plots.accuracy_with_ci(
      os.path.join(workdir, "domain.png"),
      {f"{name}\n{split}": (100 * a, 100 * classifier.ci95(a, n))
       for name, splits in acc.items() for split, a in splits.items()},
      title=f"rotated MNIST: 0 -> {cfg.target_angle:g} degrees", xlabel="model / test set")
  return {"num_test": n, "target_angle": cfg.target_angle, "steps": cfg.steps,
          "reversal_schedule_gamma": cfg.gamma, "max_reversal": cfg.max_reversal, "accuracy": acc,
          "pngs": [os.path.basename(png)]}
