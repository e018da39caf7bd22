"""Gradient attributions of the MNIST classifier, drawn as a grid of test digits.

The study also runs ``adapted`` (saliency of a meta-learned model before and after
few-shot adaptation) and ``attention`` (attention maps of a tiny text transformer).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments.tools import adapted, attention, classifier
from metalm.tools import explain

METHODS = ("saliency", "gradient x input", "integrated gradients", "SmoothGrad")


def attributions(fn, x, target, cfg, key):
  """``{method: attributions [B, 784]}`` for the methods of ``METHODS``."""
  return {
      "saliency": explain.saliency(fn, x, target),
      "gradient x input": explain.gradient_x_input(fn, x, target),
      "integrated gradients": explain.integrated_gradients(fn, x, target, steps=cfg.ig_steps),
      "SmoothGrad": explain.smoothgrad(fn, x, target, key=key, samples=cfg.smoothgrad_samples,
                                       noise_level=cfg.smoothgrad_noise),
  }


def completeness(fn, x, target, steps: int):
  """IG completeness: ``|sum attributions - (f(x) - f(0))[target]|``, mean and relative."""
  attr = explain.integrated_gradients(fn, x, target, steps=steps)
  picked = lambda z: jnp.take_along_axis(fn(z), target[:, None], -1)[:, 0]
  gap_B = picked(x) - picked(jnp.zeros_like(x))
  error_B = jnp.abs(jnp.sum(attr, -1) - gap_B)
  return {"mean_abs_error": float(jnp.mean(error_B)),
          "mean_abs_gap": float(jnp.mean(jnp.abs(gap_B))),
          "relative_error": float(jnp.mean(error_B) / jnp.mean(jnp.abs(gap_B))),
          "steps": steps, "num_examples": int(x.shape[0])}


def grid(path: str, x, labels, predictions, maps) -> str:
  """Rows: digits; columns: the image, then each method's map (red +, blue -)."""
  rows, cols = x.shape[0], 1 + len(maps)
  fig = Figure(figsize=(1.6 * cols, 1.6 * rows))
  axes = fig.subplots(rows, cols, squeeze=False)
  for r in range(rows):
    axes[r, 0].imshow(np.asarray(x[r]).reshape(classifier.IMAGE_SHAPE), cmap="gray_r")
    axes[r, 0].set_title(f"label {labels[r]}, pred {predictions[r]}", fontsize=7)
    for c, (name, attr) in enumerate(maps.items(), start=1):
      a = np.asarray(attr[r]).reshape(classifier.IMAGE_SHAPE)
      bound = float(np.abs(a).max()) or 1.0
      axes[r, c].imshow(a, cmap="bwr", vmin=-bound, vmax=bound)
      if r == 0:
        axes[r, c].set_title(name, fontsize=8)
  for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  return path


def run(config, workdir, params, test):
  cfg = config.explain
  fn = lambda z: classifier.logits(params, z)
  x_test, y_test = test
  x = jnp.asarray(x_test[:cfg.num_examples])
  predictions = jnp.argmax(fn(x), -1)
  maps = attributions(fn, x, predictions, cfg, jax.random.key(config.seed))
  png = grid(os.path.join(workdir, "explain.png"), x, y_test[:cfg.num_examples],
             np.asarray(predictions), maps)
  xc = jnp.asarray(x_test[:cfg.completeness_examples])
  results = {
      "methods": list(METHODS),
      "explained_class": "predicted",
      "ig_completeness": completeness(fn, xc, jnp.argmax(fn(xc), -1), cfg.ig_steps),
      "pngs": [os.path.basename(png)],
  }
  # Saliency of a meta-learned model before / after few-shot adaptation; attention maps.
  for name, part in (("adapted_saliency", adapted), ("attention_maps", attention)):
    results[name] = part.run(config, workdir)
    results["pngs"] += results[name]["pngs"]
  return results
