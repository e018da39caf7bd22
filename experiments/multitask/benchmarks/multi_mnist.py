"""Multi-MNIST, Multi-Fashion, Multi-(Fashion+MNIST): a LeNet trunk and a head per item.

Sener & Koltun 2018 (arXiv:1810.04650) and Lin et al. 2019 (arXiv:1912.12854); the data
is ``metalm.data.multi_mnist``, scored by per-task accuracy on its test split.
"""

import numpy as np

from experiments.multitask.benchmarks import common
from metalm import losses
from metalm.data import multi_mnist, multitask
from metalm.mtl import architectures
from metalm.mtl.architectures import trunks


def to_float(batch):
  """uint8 composites (stored 4x smaller) to float32 in [0, 1], on the host."""
  return batch._replace(x=np.multiply(batch.x, np.float32(1 / 255), dtype=np.float32))


def setup(config) -> common.Benchmark:
  """Config ``data``: ``dataset``, ``data_dir``, ``num_train`` / ``num_test`` (0: all),
  ``image_size``, ``max_shift``, ``seed``, ``tasks`` (``"left,right"``, or one of them for
  a single-task baseline); ``model``: ``architecture``, ``kernels``, ``head`` (the widths
  of each task's dense head)."""
  data, model_config = config.data, config.model
  names = common.task_names(data.tasks, multi_mnist.TASKS, "config.data.tasks")
  splits = {
      split: multi_mnist.load(
          data.dataset, split, data_dir=data.data_dir or None, num_examples=count or None,
          seed=data.seed, image_size=data.image_size, max_shift=data.max_shift,
          dtype=np.uint8)
      for split, count in (("train", data.num_train), (config.eval.split, data.num_test))}
  model = architectures.build(
      model_config.architecture, trunks.lenet_stages(tuple(model_config.kernels)),
      trunks.MLP(tuple(model_config.head), activate_final=False),
      (1, data.image_size, data.image_size, 1), tasks=names)
  train, test = splits["train"], splits[config.eval.split]
  predict = common.predict_fn(model)

  def correct(outputs, y):
    return {t: np.sum(np.argmax(outputs[t], -1) == y[t]) for t in names}

  def evaluate(params, model_state):
    batches = multitask.batches(test.x, test.y, config.eval.batch_size, transform=to_float)
    hits = common.accumulate(predict, params, model_state, batches, correct)
    return {t: {"accuracy": 100.0 * float(hits[t]) / len(test.x)} for t in names}

  return common.Benchmark(
      model=model, loss_fns={t: losses.cross_entropy for t in names},
      batcher=multitask.batcher(train.x, train.y, seed=config.seed, transform=to_float),
      evaluate=evaluate,
      higher_is_better={t: {"accuracy": True} for t in names})
