"""Options usable with any balancer: weights-based methods, recompute every N, task sampling.

Gradient methods whose direction is a weighting of the task gradients (MGDA, CAGrad,
Nash-MTL, IMTL-G, Aligned-MTL, PCGrad, GradNorm, ...) are written as a ``weights_fn`` and
wrapped by ``weighted``::

  def nash_mtl(*, max_iters=20):
    def weights_fn(gram_TxT, state, *, losses_T, key):
      ...
      return weights_T, state                     # direction = sum_t weights_T[t] g_t

    return options.weighted(weights_fn, init=lambda num_tasks: NashState(...))

``weights_fn(inputs, state, *, losses_T, key) -> (weights_T, state)`` sees the leafwise
Gram matrix ``gram_TxT`` (``inputs="gram"``, the default) or the per-task gradients
``grads_T`` themselves (``inputs="grads"``). ``state`` is the method's own state
(``init(num_tasks)``; ``()`` when it keeps none). ``weighted`` returns a
``base.GradBalancer`` whose state is ``WeightedState(weights_T, inner)``: the last
weights, which the training step reports and ``every_n`` reuses. Methods whose direction
is no weighting (e.g. an EMA of past gradients) are plain ``base.GradBalancer`` s; they
compose with ``subsample_tasks`` but not with ``every_n``.

State protocol (structural; the step never looks at a method's name):

- ``state.weights_T``: the weights the method used last (reported as ``weight/<task>``).
- ``state.task_indices_K``: the tasks whose gradients the next ``update`` reads; the
  step then computes only those K per-task gradients (other rows are zeros).
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from metalm.mtl import base


class WeightedState(NamedTuple):
  weights_T: jax.Array  # The weights of the last update (ones before the first).
  inner: Any  # The method's own state.


def weighted(
    weights_fn: Callable[..., tuple[jax.Array, Any]],
    init: Callable[[int], Any] = lambda num_tasks: (),
    *,
    inputs: str = "gram",
) -> base.GradBalancer:
  """A GradBalancer whose direction is ``sum_t weights_T[t] g_t``.

  Args:
    weights_fn: ``weights_fn(gram_TxT | grads_T, state, *, losses_T, key) ->
      (weights_T, state)``.
    init: ``init(num_tasks) -> state`` of the method.
    inputs: ``"gram"`` (leafwise ``base.gram``) or ``"grads"`` (the per-task pytree).
  """
  if inputs not in ("gram", "grads"):
    raise ValueError(f"inputs must be 'gram' or 'grads', got {inputs!r}.")

  def init_fn(num_tasks):
    return WeightedState(jnp.ones((num_tasks,), jnp.float32), init(num_tasks))

  def update(grads_T, state, *, losses_T, key=None):
    x = base.gram(grads_T) if inputs == "gram" else grads_T
    weights_T, inner = weights_fn(x, state.inner, losses_T=losses_T, key=key)
    weights_T = jax.lax.stop_gradient(weights_T)
    return base.combine(weights_T, grads_T), WeightedState(weights_T.astype(jnp.float32), inner)

  return base.GradBalancer(init_fn, update)


def from_loss_balancer(balancer: base.LossBalancer) -> base.GradBalancer:
  """A LossBalancer as a GradBalancer (same weights, applied to per-task gradients)."""

  def weights_fn(grads_T, state, *, losses_T, key=None):
    del grads_T
    return balancer.update(losses_T, state, key=key)

  return weighted(weights_fn, balancer.init, inputs="grads")


def weights_of(state) -> jax.Array | None:
  """The weights a balancer state exposes (``state.weights_T``), or None."""
  return getattr(state, "weights_T", None)


def task_indices(state) -> jax.Array | None:
  """The tasks whose gradients the next update reads (``state.task_indices_K``), or None."""
  return getattr(state, "task_indices_K", None)


class EveryNState(NamedTuple):
  count: jax.Array  # Updates so far; weights are recomputed when ``count % n == 0``.
  weights_T: jax.Array  # The weights being reused.
  inner: Any


def every_n(balancer: base.Balancer, n: int) -> base.Balancer:
  """Recomputes the weights every ``n`` updates and reuses them in between.

  Between recomputations a GradBalancer's direction is ``combine(last weights, grads_T)``
  and its state does not advance. The wrapped GradBalancer must expose ``weights_T`` (build
  it with ``weighted``). Put ``every_n`` outermost when combining with ``subsample_tasks``.

  Navon et al. 2022 (Nash-MTL-N), arXiv 2202.01017.
  """
  is_loss = isinstance(balancer, base.LossBalancer)

  def init(num_tasks):
    inner = balancer.init(num_tasks)
    if not is_loss and weights_of(inner) is None:
      raise TypeError(
          "every_n needs a balancer that exposes its weights (state.weights_T); "
          "build gradient methods with options.weighted.")
    return EveryNState(jnp.zeros((), jnp.int32), jnp.ones((num_tasks,), jnp.float32), inner)

  def fresh(operands):
    grads_T, losses_T, state, key = operands
    if is_loss:
      weights_T, inner = balancer.update(losses_T, state.inner, key=key)
      return weights_T.astype(jnp.float32), weights_T.astype(jnp.float32), inner
    direction, inner = balancer.update(grads_T, state.inner, losses_T=losses_T, key=key)
    return direction, weights_of(inner).astype(jnp.float32), inner

  def reuse(operands):
    grads_T, _, state, _ = operands
    out = state.weights_T if is_loss else base.combine(state.weights_T, grads_T)
    return out, state.weights_T, state.inner

  def run(grads_T, losses_T, state, key):
    out, weights_T, inner = jax.lax.cond(
        state.count % n == 0, fresh, reuse, (grads_T, losses_T, state, key))
    return out, EveryNState(state.count + 1, weights_T, inner)

  if is_loss:
    return base.LossBalancer(
        init, lambda losses_T, state, *, key=None: run(None, losses_T, state, key))
  return base.GradBalancer(
      init, lambda grads_T, state, *, losses_T, key=None: run(grads_T, losses_T, state, key))


class SubsampleState(NamedTuple):
  task_indices_K: jax.Array  # The tasks the next update reads, sorted.
  weights_T: jax.Array | None  # Inner weights scattered over all T tasks (zeros elsewhere).
  inner: Any  # The inner balancer's state, over K tasks.


def subsample_tasks(balancer: base.Balancer, k: int, *, seed: int = 0) -> base.Balancer:
  """The balancer sees ``k`` of the T tasks per update, drawn without replacement.

  The update reads the tasks in ``state.task_indices_K`` and draws the next ones from its
  key, so the step can compute only those K per-task gradients. The inner balancer works
  over K tasks; its direction (or weights) is scaled by ``T / k``, an unbiased estimate of
  the full one for methods linear in the gradients (e.g. equal weighting).

  Liu et al. 2021 (CAGrad-Fast), arXiv 2110.14048.
  """
  is_loss = isinstance(balancer, base.LossBalancer)

  def draw(key, num_tasks):
    return jnp.sort(jax.random.choice(key, num_tasks, (k,), replace=False))

  def init(num_tasks):
    if not 0 < k <= num_tasks:
      raise ValueError(f"subsample_tasks needs 0 < k <= {num_tasks} tasks, got k={k}.")
    inner = balancer.init(k)
    weights_T = None if weights_of(inner) is None and not is_loss else jnp.zeros((num_tasks,))
    return SubsampleState(draw(jax.random.key(seed), num_tasks), weights_T, inner)

  def scatter(state, weights_K, num_tasks):
    if weights_K is None:
      return None
    return jnp.zeros((num_tasks,), jnp.float32).at[state.task_indices_K].set(weights_K)

  def update_losses(losses_T, state, *, key):
    num_tasks = losses_T.shape[0]
    sample_key, key = jax.random.split(key)
    weights_K, inner = balancer.update(losses_T[state.task_indices_K], state.inner, key=key)
    weights_T = scatter(state, weights_K * (num_tasks / k), num_tasks)
    return weights_T, SubsampleState(draw(sample_key, num_tasks), weights_T, inner)

  def update_grads(grads_T, state, *, losses_T, key):
    num_tasks = losses_T.shape[0]
    sample_key, key = jax.random.split(key)
    idx_K = state.task_indices_K
    grads_K = jax.tree.map(lambda g: g[idx_K], grads_T)
    direction, inner = balancer.update(grads_K, state.inner, losses_T=losses_T[idx_K], key=key)
    direction = jax.tree.map(lambda d: d * (num_tasks / k), direction)
    weights_K = weights_of(inner)
    weights_T = None if weights_K is None else scatter(state, weights_K * (num_tasks / k),
                                                         num_tasks)
    return direction, SubsampleState(draw(sample_key, num_tasks), weights_T, inner)

  if is_loss:
    return base.LossBalancer(init, update_losses)
  return base.GradBalancer(init, update_grads)
