"""QM9: 11 regression targets, one task each, from a pair-convolution network.

Nash-MTL's benchmark (Navon et al. 2022, arXiv:2202.01017): MSE on standardized
targets; scored by each target's MAE on the test split in reporting units (meV for the
energies), against the single-task MAE (``qm9.STL_MAE``) for ``delta_m``.
"""

import numpy as np

from experiments.multitask.benchmarks import common
from metalm import losses
from metalm.data import multitask, qm9
from metalm.eval import regression
from metalm.mtl import architectures
from metalm.mtl.architectures import graph, trunks

TASKS = qm9.TARGET_NAMES


def pack(molecules: qm9.Molecules) -> np.ndarray:
  return graph.pack_molecules(molecules.nodes, molecules.positions, molecules.mask,
                              molecules.edges, molecules.edge_features, molecules.edge_mask)


def pack_batch(batch):
  """A batch of ``Molecules`` (targets dropped) to the network's packed input."""
  return batch._replace(x=pack(batch.x))


def split_targets(molecules: qm9.Molecules) -> dict:
  return {t: molecules.targets[:, i:i + 1] for i, t in enumerate(TASKS)}


def baselines() -> dict:
  return {t: {"mae": float(v)} for t, v in zip(TASKS, qm9.STL_MAE, strict=True)}


def setup(config) -> common.Benchmark:
  """Config ``data``: ``data_dir``, ``seed``, ``num_val``, ``num_test``, ``stats``,
  ``check_count``; ``model``: ``hidden``, ``num_layers``, ``num_rbf``."""
  data, m = config.data, config.model
  dataset = qm9.load(data.data_dir or None, seed=data.seed, num_val=data.num_val,
                     num_test=data.num_test, stats=data.stats, check_count=data.check_count)
  train, test = dataset.train, getattr(dataset, config.eval.split)
  trunk = graph.PairConvNet(qm9.NUM_NODE_FEATURES, m.hidden, m.num_layers, m.num_rbf)
  head = trunks.MLP((m.hidden, 1), activate_final=False)
  example = (1, qm9.MAX_ATOMS, qm9.NUM_NODE_FEATURES + 4 + qm9.MAX_ATOMS)
  model = architectures.build("hard_sharing", trunk, head, example, tasks=TASKS)
  predict = common.predict_fn(model)
  scale = qm9.report_scale(dataset.std).astype(np.float32)

  def error_sums(outputs, y):
    pred = np.concatenate([np.asarray(outputs[t]) for t in TASKS], axis=-1)
    target = np.concatenate([y[t] for t in TASKS], axis=-1)
    sums, count = regression.absolute_error_sums(pred, target)
    return {"sums": sums, "count": count}

  def evaluate(params, model_state):
    x = test._replace(targets=None)
    batches = multitask.batches(x, split_targets(test), config.eval.batch_size,
                                transform=pack_batch)
    total = common.accumulate(predict, params, model_state, batches, error_sums)
    mae = total["sums"] / total["count"] * scale
    return {t: {"mae": float(v)} for t, v in zip(TASKS, mae, strict=True)}

  return common.Benchmark(
      model=model, loss_fns={t: losses.mse for t in TASKS},
      batcher=multitask.batcher(train._replace(targets=None), split_targets(train),
                                seed=config.seed, transform=pack_batch),
      evaluate=evaluate, higher_is_better={t: {"mae": False} for t in TASKS})
