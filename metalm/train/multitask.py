"""The multitask trainer: ``mtl.step.train_step`` driven by the shared loop.

Same loop as meta-learning (``loop.run``): orbax checkpoints with exact resume, signals,
non-finite stop, ``metrics.jsonl``. Minibatches come from a host-side batcher
(``data.multitask.ArrayBatcher``, or anything with ``batch(step, batch_size)``)
prefetched on a thread; the key of step k is ``fold_in(key, k)``.
"""

import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from metalm.data import episodic
from metalm.mtl import base
from metalm.mtl import step as mtl_step
from metalm.train import loop


def make_step(model: base.MultiTaskModel, balancer: base.Balancer,
              tx: optax.GradientTransformation, loss_fns: Mapping[str, Callable], *,
              seed: int, rep_grad: bool = False):
  """The jitted, donated ``step(train_state, batch) -> (train_state, metrics)``."""
  step_key = jax.random.fold_in(jax.random.key(seed), 2)

  def step(train_state, batch):
    key = jax.random.fold_in(step_key, train_state.step)
    return mtl_step.train_step(model, balancer, tx, loss_fns, train_state, batch, key,
                               rep_grad=rep_grad)

  return jax.jit(step, donate_argnums=0)


def init_fn(model, balancer, tx, step_fn, example_batch):
  """``init(key) -> MultiTaskTrainState`` whose structure no step changes.

  A balancer state sized at its first update (e.g. DB-MTL without ``grads_like``) is
  created as that update would create it (zeros), so the step compiles once and a
  checkpoint restores into the initial structure.
  """

  def init(key):
    state = mtl_step.init_train_state(model, balancer, tx, key)
    after = jax.eval_shape(step_fn, state, example_batch)[0]
    if jax.tree.structure(after) == jax.tree.structure(state):
      return state
    balancer_state = jax.tree.map(
        lambda now, later: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), later)
        if now is None else now,
        state.balancer_state, after.balancer_state, is_leaf=lambda v: v is None)
    return state._replace(balancer_state=balancer_state)

  return init


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    model: base.MultiTaskModel,
    balancer: base.Balancer,
    tx: optax.GradientTransformation,
    loss_fns: Mapping[str, Callable],
    batcher,
    rep_grad: bool = False,
    hooks: Sequence[Callable[[int, Any], None]] = (),
) -> mtl_step.MultiTaskTrainState:
  """Trains for ``config.num_steps`` steps, resuming from ``workdir`` if possible.

  Args:
    config: uses ``seed``, ``num_steps``, ``batch_size``, ``log_every``,
      ``checkpoint_every`` and ``max_checkpoints``.
    workdir: holds ``checkpoints/`` and ``metrics.jsonl``.
    model: the multitask model.
    balancer: a loss or gradient balancer (``mtl.build``).
    tx: the optimizer of the model parameters.
    loss_fns: ``loss_fns[task](out, y) -> (loss, metrics)``.
    batcher: ``batcher.batch(step, batch_size) -> MultiTaskBatch``, a pure function of
      the step (``data.multitask.ArrayBatcher``).
    rep_grad: per-task gradients at the shared representation (MGDA-UB and others).
    hooks: called as ``hook(step, state)`` after every step.

  Returns:
    The final ``MultiTaskTrainState``.

  Raises:
    FloatingPointError: a step had a non-finite loss or gradient (named).
    SystemExit: on SIGTERM / SIGINT, after writing a checkpoint.
  """
  step_fn = make_step(model, balancer, tx, loss_fns, seed=config.seed, rep_grad=rep_grad)
  example = batcher.batch(0, config.batch_size)
  init = init_fn(model, balancer, tx, step_fn, example)
  return loop.run(
      config, workdir, init=init, step_fn=step_fn,
      batches=functools.partial(_prefetch, batcher, config), hooks=hooks,
      describe=f"the multitask step ({len(model.tasks)} tasks, batch {config.batch_size})")


def _prefetch(batcher, config, first_step):
  return episodic.prefetch(batcher, first_step, config.batch_size,
                           num_steps=config.num_steps - first_step)
