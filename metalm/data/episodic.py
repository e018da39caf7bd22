"""N-way K-shot episodes built on the host from class-indexed arrays, and a prefetcher.

An episode draws N classes of a split, then K support and Q query examples of each
class, all distinct. Labels are relabelled per episode to ``0..N-1``: label ``i`` is the
``i``-th class drawn, and the classes are drawn in a random order, so the map from a
class to a label changes from episode to episode (Vinyals et al. 2016,
arXiv:1606.04080; Snell et al. 2017, arXiv:1703.05175).

Every task of step ``s`` is drawn from its own ``numpy`` generator seeded with
``SeedSequence([seed, s, t])``: the batch of step ``s`` is a pure function of
``(seed, s)``, so a run resumed at step ``s`` sees exactly the episodes it would have
seen, and task ``t`` does not depend on how many tasks the batch holds.

Layout inside an episode is class-major: ``support_x[t, i*K + k]`` is shot ``k`` of
label ``i`` (``support_y[t] == [0]*K + [1]*K + ...``), and likewise for the queries.
"""

import atexit
import itertools
import queue
import threading
import weakref
from typing import Any, Iterator, NamedTuple, Sequence

import jax
import numpy as np

from metalm import types, validate


class EpisodicSampler(NamedTuple):
  """Host-side episode sampler; build it with ``sampler(...)``.

  Attributes:
    examples: ``[M, ...]`` every example of every class, flattened.
    offsets_C: first row in ``examples`` of each class.
    counts_C: number of examples of each class.
    classes: the class indices episodes draw from (a split).
    ways: N, classes per episode.
    shots: K, support examples per class.
    queries: Q, query examples per class.
    seed: root of every draw.
  """

  examples: np.ndarray
  offsets_C: np.ndarray
  counts_C: np.ndarray
  classes: np.ndarray
  ways: int
  shots: int
  queries: int
  seed: int

  def episode(self, step: int, task: int) -> tuple[np.ndarray, np.ndarray]:
    """The classes ``[N]`` and rows of ``examples`` ``[N, K+Q]`` of one episode."""
    return sample_episode(
        episode_rng(self.seed, step, task), self.classes, self.offsets_C,
        self.counts_C, ways=self.ways, shots=self.shots, queries=self.queries)

  def batch(self, step: int, num_tasks: int) -> types.TaskBatch:
    """The ``num_tasks`` episodes of ``step`` as a ``TaskBatch`` of numpy arrays.

    Returns:
      ``support_x [T, N*K, ...]`` and ``query_x [T, N*Q, ...]``: float32 for images
      (uint8 scaled to [0, 1], bool to {0, 1}, floats cast unchanged), int32 for signed
      integer examples (token ids, kept as they are); ``support_y [T, N*K]`` and
      ``query_y [T, N*Q]`` int32 in ``0..N-1``.
    """
    if num_tasks < 1:
      raise ValueError(f"num_tasks must be >= 1; got {num_tasks}.")
    rows_TxNxM = np.stack([self.episode(step, t)[1] for t in range(num_tasks)])
    x = self.examples[rows_TxNxM]  # [T, N, K+Q, ...]
    x = x.astype(np.int32) if np.issubdtype(x.dtype, np.signedinteger) else to_float(x)
    k, shape = self.shots, x.shape[3:]
    labels = lambda m: np.tile(np.repeat(np.arange(self.ways, dtype=np.int32), m),
                               (num_tasks, 1))
    return types.TaskBatch(
        support_x=x[:, :, :k].reshape(num_tasks, -1, *shape),
        support_y=labels(k),
        query_x=x[:, :, k:].reshape(num_tasks, -1, *shape),
        query_y=labels(self.queries))


def sampler(
    images: np.ndarray | Sequence[np.ndarray],
    *,
    ways: int,
    shots: int,
    queries: int,
    seed: int = 0,
    classes: Sequence[int] | np.ndarray | None = None,
) -> EpisodicSampler:
  """An N-way K-shot sampler over a class-indexed array.

  Args:
    images: ``[C, E, ...]`` (e.g. ``[C, E, H, W, 1]`` uint8, or ``[C, E, L]`` int32
      token ids), or a list of ``C`` arrays ``[E_c, ...]`` with the same trailing shape
      (a list is copied once).
    ways: N, classes per episode.
    shots: K, support examples per class.
    queries: Q, query examples per class (may be 0).
    seed: non-negative root seed.
    classes: class indices to draw from (a meta-train/val/test split); all by default.

  Returns:
    The sampler; ``sampler.batch(step, num_tasks)`` builds a ``TaskBatch``.

  Raises:
    ValueError: a split has fewer than N classes, or a class of it fewer than K+Q
      examples, or an argument is out of range.
  """
  examples, offsets_C, counts_C = _flatten(images)
  classes = np.arange(len(counts_C)) if classes is None else np.asarray(classes)
  if classes.ndim != 1 or len(np.unique(classes)) != len(classes):
    raise ValueError("classes must be a 1-D array of distinct class indices.")
  if len(classes) and (classes.min() < 0 or classes.max() >= len(counts_C)):
    raise ValueError(f"classes must lie in [0, {len(counts_C)}).")
  for name, value, minimum in (("ways", ways, 1), ("shots", shots, 1),
                               ("queries", queries, 0), ("seed", seed, 0)):
    validate.integer(value, name, minimum=minimum)
  if len(classes) < ways:
    raise ValueError(f"A {ways}-way episode needs {ways} classes; the split has "
                     f"{len(classes)}.")
  fewest = int(counts_C[classes].min())
  if fewest < shots + queries:
    raise ValueError(f"{shots} shots + {queries} queries need {shots + queries} "
                     f"examples per class; a class of the split has {fewest}.")
  return EpisodicSampler(examples, offsets_C, counts_C, classes.astype(np.int64),
                         ways, shots, queries, seed)


def episode_rng(seed: int, step: int, task: int) -> np.random.Generator:
  """The generator of task ``task`` of step ``step``: a pure function of its args."""
  return np.random.default_rng(np.random.SeedSequence([seed, step, task]))


def sample_episode(rng, classes, offsets_C, counts_C, *, ways, shots, queries):
  """Draws N classes of ``classes`` and K+Q distinct examples of each.

  Returns:
    ``classes_N`` (label ``i`` is ``classes_N[i]``) and ``rows_NxM``, the rows of the
    flattened examples, support first (``M = K + Q``).
  """
  classes_N = classes[rng.choice(len(classes), ways, replace=False)]
  counts_N = counts_C[classes_N]
  # Uniform keys, +inf past each class's count: the M smallest are a uniform draw
  # without replacement, for ragged classes too, in one vectorized call.
  keys_NxE = rng.random((ways, int(counts_N.max())))
  keys_NxE[np.arange(keys_NxE.shape[1])[None] >= counts_N[:, None]] = np.inf
  picks_NxM = np.argsort(keys_NxE, axis=1)[:, :shots + queries]
  return classes_N, offsets_C[classes_N][:, None] + picks_NxM


def to_float(x: np.ndarray) -> np.ndarray:
  """float32 images: uint8 scaled to [0, 1]; bool and floats cast."""
  if x.dtype == np.uint8:
    return x.astype(np.float32) * np.float32(1 / 255)
  return x.astype(np.float32)


def _flatten(images):
  """``[M, ...]`` examples, class offsets and counts; a view for an array input."""
  if isinstance(images, np.ndarray):
    if images.ndim < 2:
      raise ValueError(f"images must be [C, E, ...]; got shape {images.shape}.")
    num_classes, per_class = images.shape[:2]
    offsets_C = np.arange(num_classes, dtype=np.int64) * per_class
    counts_C = np.full(num_classes, per_class, np.int64)
    return images.reshape(-1, *images.shape[2:]), offsets_C, counts_C
  arrays = [np.asarray(a) for a in images]
  if (not arrays or len({a.shape[1:] for a in arrays}) != 1
      or len({a.dtype for a in arrays}) != 1):
    raise ValueError("images must be a non-empty list of [E_c, ...] arrays with one "
                     "trailing shape and one dtype.")
  counts_C = np.array([len(a) for a in arrays], np.int64)
  offsets_C = np.concatenate([[0], np.cumsum(counts_C)[:-1]]).astype(np.int64)
  return np.concatenate(arrays), offsets_C, counts_C


# Running workers and their stop events. At exit they are stopped and joined while the
# interpreter is still whole: a daemon thread killed inside jax.device_put aborts it.
_WORKERS: dict[threading.Thread, threading.Event] = {}


@atexit.register
def _stop_workers():
  for stop in list(_WORKERS.values()):
    stop.set()
  for thread in list(_WORKERS):
    thread.join(timeout=10.0)


class _Failure(NamedTuple):
  error: BaseException


_END = object()


class Prefetcher:
  """Iterator of ``(step, batch)`` built and ``jax.device_put`` by a daemon thread.

  Use it as an iterator and ``close()`` it (or use ``with``) when done early; it also
  stops when garbage collected and never holds up interpreter exit. An exception
  raised while building a batch is re-raised by ``next`` at that step's turn.
  """

  def __init__(self, sampler_, start_step, num_tasks, buffer, num_steps, sharding):
    if buffer < 1:
      raise ValueError(f"buffer must be >= 1; got {buffer}.")
    self._queue = queue.Queue(maxsize=buffer)
    self._stop = threading.Event()
    steps = (itertools.count(start_step) if num_steps is None
             else range(start_step, start_step + num_steps))
    put = (lambda b: jax.device_put(b, sharding)) if sharding is not None else (
        jax.device_put)
    # The worker holds no reference to self, so dropping the iterator stops it.
    self._thread = threading.Thread(
        target=_work, args=(sampler_, steps, num_tasks, put, self._queue, self._stop),
        name="metalm-episodic-prefetch", daemon=True)
    weakref.finalize(self, self._stop.set)
    self._done = False
    _WORKERS[self._thread] = self._stop
    self._thread.start()

  def __iter__(self) -> Iterator[tuple[int, types.TaskBatch]]:
    return self

  def __next__(self) -> tuple[int, types.TaskBatch]:
    while not self._done:
      try:
        item = self._queue.get(timeout=0.5)
      except queue.Empty:
        if not self._thread.is_alive() and self._queue.empty():
          self.close()
          raise RuntimeError("The prefetch worker exited without a result.") from None
        continue
      if isinstance(item, _Failure):
        self.close()
        raise item.error
      if item is _END:
        self.close()
        break
      return item
    raise StopIteration

  def close(self) -> None:
    """Stops the worker and drops the batches it had built."""
    self._done = True
    self._stop.set()
    while True:  # Unblock a worker waiting on a full queue.
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    if self._thread is not threading.current_thread():
      self._thread.join(timeout=5.0)

  def __enter__(self) -> "Prefetcher":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def prefetch(
    sampler_: Any,
    start_step: int,
    num_tasks: int,
    buffer: int = 2,
    *,
    num_steps: int | None = None,
    sharding: Any = None,
) -> Prefetcher:
  """Builds the batches of ``start_step, start_step + 1, ...`` ahead, on a thread.

  Args:
    sampler_: anything with ``batch(step, num_tasks) -> TaskBatch`` (an
      ``EpisodicSampler``).
    start_step: the first step yielded; pass the resumed step to continue a run.
    num_tasks: T, tasks per batch.
    buffer: batches built ahead of the consumer.
    num_steps: stop after this many steps; endless by default.
    sharding: passed to ``jax.device_put`` (e.g. a ``NamedSharding`` over the task
      axis); the default device otherwise.

  Returns:
    A ``Prefetcher`` yielding ``(step, batch)`` in step order, equal to
    ``(step, jax.device_put(sampler_.batch(step, num_tasks)))``.
  """
  return Prefetcher(sampler_, start_step, num_tasks, buffer, num_steps, sharding)


def _work(sampler_, steps, num_tasks, put, out, stop):
  try:
    for step in steps:
      if stop.is_set() or not _offer(out, (step, put(sampler_.batch(step, num_tasks))),
                                     stop):
        return
    _offer(out, _END, stop)
  except BaseException as error:  # noqa: B036  (handed to the consumer)
    _offer(out, _Failure(error), stop)
  finally:
    _WORKERS.pop(threading.current_thread(), None)


def _offer(out, item, stop) -> bool:
  """Puts ``item``, giving up once ``stop`` is set; whether it was put."""
  while not stop.is_set():
    try:
      out.put(item, timeout=0.1)
      return True
    except queue.Full:
      pass
  return False
