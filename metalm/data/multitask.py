"""Host-side minibatches of a multitask data set, a pure function of (seed, step).

Every epoch is a permutation of the examples drawn from ``(seed, epoch)``; step ``k``
with batch size ``B`` reads rows ``(k mod E) B .. (k mod E) B + B - 1`` of epoch
``k div E``'s permutation (``E = N div B`` steps per epoch; the last ``N mod B``
examples of each permutation are dropped). So a run resumed at step ``k`` sees the
same batches as one that never stopped. ``episodic.prefetch`` builds them on a thread.
"""

from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from metalm.mtl import step as mtl_step


class ArrayBatcher(NamedTuple):
  """Minibatches of ``MultiTaskBatch(x, y)`` arrays with a leading example axis N.

  Attributes:
    data: a ``MultiTaskBatch`` (or any pytree) of numpy arrays ``[N, ...]``.
    seed: seeds the permutation of every epoch.
    transform: applied to each batch on the host (e.g. uint8 images to float32).
  """

  data: Any
  seed: int
  transform: Callable[[Any], Any] | None = None

  @property
  def num_examples(self) -> int:
    return len(jax.tree.leaves(self.data)[0])

  def batch(self, step: int, batch_size: int):
    """The batch of ``step`` (the update that takes ``state.step`` from step to step+1)."""
    rows = indices(self.seed, self.num_examples, step, batch_size)
    out = jax.tree.map(lambda a: a[rows], self.data)
    return out if self.transform is None else self.transform(out)


class SplitBatcher(NamedTuple):
  """Minibatches of a lazily read split (``dense_npy.DenseSplit``), in the same order.

  With ``augment``, step k's examples are augmented (MTAN's scale-crop and flip) by a
  generator seeded with ``(seed, k)``.
  """

  split: Any
  seed: int
  augment: bool = False

  @property
  def num_examples(self) -> int:
    return len(self.split)

  def batch(self, step: int, batch_size: int):
    rows = indices(self.seed, self.num_examples, step, batch_size)
    rng = np.random.default_rng([self.seed, int(step), 1]) if self.augment else None
    return self.split.batch(rows, augment_rng=rng)


class JointBatcher(NamedTuple):
  """Minibatches over tasks with data sets of their own, each read as ``ArrayBatcher``.

  Step ``k`` takes ``B`` examples of every task, task ``t`` from its own epochs (seeded
  by ``(seed, t)``), and stacks the inputs on axis 1: ``x`` is ``[B, T, ...]`` and
  ``y[task]`` is ``[B, ...]``. Tasks of different sizes simply go through different
  numbers of epochs.

  Attributes:
    x: one array ``[N_t, ...]`` per task (same trailing shape), in the order of ``tasks``.
    y: ``{task: [N_t, ...]}`` targets.
    tasks: the task names.
    seed: seeds every task's permutations.
  """

  x: tuple[np.ndarray, ...]
  y: dict
  tasks: tuple[str, ...]
  seed: int

  @property
  def num_examples(self) -> int:
    return min(len(x) for x in self.x)

  def batch(self, step: int, batch_size: int):
    rows = [indices((self.seed, t), len(x), step, batch_size) for t, x in enumerate(self.x)]
    return mtl_step.MultiTaskBatch(
        np.stack([x[r] for x, r in zip(self.x, rows, strict=True)], axis=1),
        {task: self.y[task][r] for task, r in zip(self.tasks, rows, strict=True)})


def joint_batcher(x: dict, y: dict, *, seed: int) -> JointBatcher:
  """A ``JointBatcher`` over ``{task: inputs [N_t, ...]}`` and ``{task: targets [N_t, ...]}``."""
  if set(x) != set(y):
    raise ValueError(f"x and y need the same tasks; got {sorted(x)} and {sorted(y)}.")
  tasks = tuple(x)
  for task in tasks:
    if len(x[task]) != len(y[task]):
      raise ValueError(f"Task {task!r} has {len(x[task])} inputs but {len(y[task])} targets.")
  shapes = {np.shape(v)[1:] for v in x.values()}
  if len(shapes) != 1:
    raise ValueError(f"Every task's inputs need one shape per example; got {shapes}.")
  return JointBatcher(tuple(x[t] for t in tasks), {t: y[t] for t in tasks}, tasks, seed)


def indices(seed: int | tuple[int, ...], num_examples: int, step: int,
            batch_size: int) -> np.ndarray:
  """The example rows of ``step``: a slice of epoch ``step div E``'s permutation."""
  per_epoch = num_examples // batch_size
  if per_epoch < 1:
    raise ValueError(f"batch size {batch_size} exceeds the {num_examples} examples.")
  epoch, offset = divmod(int(step), per_epoch)
  order = np.random.default_rng([*np.atleast_1d(seed).tolist(), epoch]).permutation(
      num_examples)
  return order[offset * batch_size:(offset + 1) * batch_size]


def batcher(x, y: dict, *, seed: int, transform=None) -> ArrayBatcher:
  """An ``ArrayBatcher`` over inputs ``x`` and per-task targets ``y`` (arrays ``[N, ...]``)."""
  sizes = {len(leaf) for leaf in jax.tree.leaves((x, y))}
  if len(sizes) != 1:
    raise ValueError(f"x and every y[task] need the same number of examples; got {sizes}.")
  return ArrayBatcher(mtl_step.MultiTaskBatch(x, dict(y)), seed, transform)


def batches(x, y: dict, batch_size: int, *, transform=None):
  """Every example once, in order, as ``MultiTaskBatch`` es (the last may be smaller)."""
  n = len(jax.tree.leaves(x)[0])
  for start in range(0, n, batch_size):
    out = jax.tree.map(lambda a, s=slice(start, start + batch_size): a[s],
                       mtl_step.MultiTaskBatch(x, dict(y)))
    yield out if transform is None else transform(out)
