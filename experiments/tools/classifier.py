"""The shared piece of the tool studies: MNIST arrays and a small MLP classifier.

The MLP is ``metalm.models``' ``mlp`` (ReLU Dense layers, output layer ``head``); its
forward pass is also written out layer by layer here so that studies can reach the
hidden features (DANN) and the input of every layer (activation quantization).
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import traverse_util
from scipy import ndimage

from metalm import models
from metalm.data import mnist
from metalm.tools import compression
from metalm.train import tensorboard

IMAGE_SHAPE = (28, 28)
NUM_FEATURES = 784


def load_split(split: str, *, limit: int | None = None, angle: float = 0.0):
  """``(x [N, 784] float32 in [0, 1], y [N] int32)``, optionally rotated by ``angle`` degrees."""
  arrays = mnist.load("mnist", split)
  images = np.asarray(arrays.images[:limit], np.float32) / 255.0
  if angle:
    images = np.clip(ndimage.rotate(images, angle, axes=(1, 2), reshape=False, order=1), 0, 1)
  return images.reshape(len(images), NUM_FEATURES), np.asarray(arrays.labels[:limit])


def build(hidden, num_outputs: int = 10, inputs: int = NUM_FEATURES):
  """``ModelFns`` of the library's MLP with these hidden widths."""
  config = ml_collections.ConfigDict(dict(name="mlp", hidden=tuple(hidden),
                                          num_outputs=num_outputs, norm="none"))
  return models.build(config, (1, inputs))


def init(hidden, key, num_outputs: int = 10, inputs: int = NUM_FEATURES):
  return build(hidden, num_outputs, inputs).init(key)[0]


def layer_names(params) -> list[str]:
  hidden = sorted((k for k in params if k.startswith("Dense_")), key=lambda k: int(k[6:]))
  return [*hidden, "head"]


def _dense(layer, x):
  return x @ layer["kernel"] + layer["bias"]


def features(params, x, *, act_scales=None, bits: int = 8):
  """The last hidden layer's output; ``act_scales`` fake-quantizes each layer's input."""
  for i, name in enumerate(layer_names(params)[:-1]):
    if act_scales is not None:
      x = compression.fake_quant(x, act_scales[i], bits)
    x = jax.nn.relu(_dense(params[name], x))
  return x


def head(params, h):
  """The output layer on features ``h``."""
  return _dense(params["head"], h)


def logits(params, x, *, act_scales=None, bits: int = 8):
  """Class logits ``[B, 10]``, as ``model.apply`` computes them (plus optional act. quant)."""
  h = features(params, x, act_scales=act_scales, bits=bits)
  if act_scales is not None:
    h = compression.fake_quant(h, act_scales[-1], bits)
  return head(params, h)


def layer_inputs(params, x) -> list[jax.Array]:
  """The input of every Dense layer (for activation calibration)."""
  inputs = []
  for name in layer_names(params):
    inputs.append(x)
    x = jax.nn.relu(_dense(params[name], x)) if name != "head" else x
  return inputs


def cross_entropy(params, x, y):
  return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()


def accuracy(fn, x, y, batch_size: int = 2000) -> float:
  """Accuracy of ``fn(x) -> logits`` over ``(x, y)`` in batches."""
  fn = jax.jit(fn)
  correct = 0
  for start in range(0, len(x), batch_size):
    out = fn(jnp.asarray(x[start:start + batch_size]))
    correct += int(jnp.sum(jnp.argmax(out, -1) == jnp.asarray(y[start:start + batch_size])))
  return correct / len(x)


def ci95(p: float, n: int) -> float:
  """Half-width of the normal-approximation 95% interval of an accuracy ``p`` over ``n``."""
  return float(1.96 * np.sqrt(p * (1 - p) / n))


def fit(loss_fn, params, data, *, steps: int, batch_size: int, learning_rate: float, key,
        chunk: int = 50, post_update=None, with_progress: bool = False,
        log: tuple[str, str] | None = None):
  """Adam on ``loss_fn(params, x, y, key)`` over random batches of ``data = (x, y)``.

  Steps run ``chunk`` at a time in a jitted ``lax.scan``; ``post_update(params)`` (e.g. a
  pruning mask) is applied after every update. With ``with_progress`` the loss also gets
  the training progress in [0, 1] as a fifth argument (for schedules). With
  ``log=(workdir, name)`` the mean loss of every chunk goes to ``workdir/metrics.jsonl``
  and TensorBoard as ``loss/<name>``.
  """
  x_all, y_all = jnp.asarray(data[0]), jnp.asarray(data[1])
  tx = optax.adam(learning_rate)
  post_update = post_update or (lambda p: p)

  def step(carry, inputs):
    params, opt_state = carry
    step_key, progress = inputs
    batch_key, loss_key = jax.random.split(step_key)
    idx = jax.random.randint(batch_key, (batch_size,), 0, x_all.shape[0])
    extra = (progress,) if with_progress else ()
    loss, grads = jax.value_and_grad(loss_fn)(params, x_all[idx], y_all[idx], loss_key, *extra)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (post_update(optax.apply_updates(params, updates)), opt_state), loss

  @jax.jit
  def run(carry, keys, progress):
    return jax.lax.scan(step, carry, (keys, progress))

  carry = (params, tx.init(params))
  keys = jax.random.split(key, steps)
  progress = jnp.arange(steps, dtype=jnp.float32) / max(steps, 1)
  losses = []
  for start in range(0, steps, chunk):
    carry, loss = run(carry, keys[start:start + chunk], progress[start:start + chunk])
    losses.append(loss)
  if log is not None:
    write_losses(*log, [float(jnp.mean(chunk_loss)) for chunk_loss in losses], chunk)
  losses = jnp.concatenate(losses) if losses else jnp.zeros((0,))
  if steps:
    logging.info("Trained %d steps; mean loss of the last %d: %.4f", steps,
                 min(chunk, steps), float(jnp.mean(losses[-chunk:])))
  return carry[0]


def write_losses(workdir: str, name: str, chunk_losses, chunk: int) -> None:
  """Appends ``{"step", "model", "loss"}`` rows to ``metrics.jsonl``; TensorBoard too."""
  if not chunk_losses:
    return
  steps = [(i + 1) * chunk for i in range(len(chunk_losses))]
  with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
    for step, loss in zip(steps, chunk_losses, strict=True):
      f.write(json.dumps({"step": step, "model": name, "loss": loss}) + "\n")
  events = tensorboard.SummaryWriter(os.path.join(workdir, "tensorboard"))
  for step, loss in zip(steps, chunk_losses, strict=True):
    events.scalars(step, {f"loss/{name}": loss})
  events.close()


def save(path: str, params) -> None:
  flat = traverse_util.flatten_dict(jax.device_get(params), sep="/")
  np.savez(path, **{k: np.asarray(v) for k, v in flat.items()})


def load_params(path: str):
  with np.load(path) as f:
    return traverse_util.unflatten_dict({k: jnp.asarray(f[k]) for k in f.files}, sep="/")


def cached(workdir: str, name: str, train_fn):
  """Params from ``workdir/<name>.npz`` if present, else ``train_fn()`` saved there."""
  path = os.path.join(workdir, f"{name}.npz")
  if os.path.exists(path):
    logging.info("Loaded %s from %s.", name, path)
    return load_params(path)
  params = train_fn()
  save(path, params)
  return params


def classifier(config, workdir: str, train_data):
  """The study classifier of ``config.classifier``, trained once and cached."""
  cfg = config.classifier

  def train():
    init_key, fit_key = jax.random.split(jax.random.key(config.seed))
    params = init(cfg.hidden, init_key)
    return fit(lambda p, x, y, k: cross_entropy(p, x, y), params, train_data,
               steps=cfg.steps, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
               key=fit_key, log=(workdir, "classifier"))

  name = "classifier_" + "-".join(map(str, cfg.hidden)) + f"_{cfg.steps}steps_seed{config.seed}"
  return cached(workdir, name, train)
