"""The MetaLearner contract and the batched meta step.

A meta-learner is a bundle of pure functions over an explicit meta-parameter pytree
(``meta_params``) and the model's non-learned ``state`` (BatchNorm statistics):

  init(key) -> (meta_params, state)
  adapt(meta_params, state, support, key) -> (task_params, state)
  outer_loss(meta_params, state, task, key) -> (loss, OuterAux)
  predict(meta_params, state, support, query_x, key) -> (outputs, state)

``task`` is one task (``types.TaskBatch`` without the task axis). The meta step
batches ``outer_loss`` over the task axis with ``vmap`` inside one jitted function.
"""

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metalm import types
from metalm.models import functional


class OuterAux(NamedTuple):
  """What ``outer_loss`` returns beside the loss."""

  state: types.ModelState  # Model state after the task (e.g. its BN statistics).
  metrics: dict[str, jax.Array]  # Scalar metrics of the task.


class MetaLearner(NamedTuple):
  init: Callable[[types.PRNGKey], tuple[types.Params, types.ModelState]]
  adapt: Callable[..., tuple[types.Params, types.ModelState]]
  outer_loss: Callable[..., tuple[jax.Array, OuterAux]]
  # Model outputs (logits, regressions) on query inputs after adapting to ``support``.
  predict: Callable[..., tuple[jax.Array, types.ModelState]]


def set_loss(model: functional.ModelFns, loss_fn):
  """The inner-loop loss ``loss(params, state, key, *, batch) -> (loss, state)``.

  Runs the model in training mode on one set (BatchNorm uses that set's statistics).
  """

  def loss(params, state, key, *, batch: types.Batch):
    out, state = model.apply(params, state, batch.x, train=True, key=key)
    return loss_fn(out, batch.y)[0], state

  return loss


def adapted_predict(model: functional.ModelFns, adapt):
  """``predict`` for learners whose ``adapt`` returns model parameters."""

  def predict(meta_params, state, support: types.Batch, query_x, key):
    adapt_key, query_key = jax.random.split(key)
    params, state = adapt(meta_params, state, support, adapt_key)
    return functional.predict_query(model, params, state, support.x, query_x, key=query_key)

  return predict


def query_loss(predict, loss_fn):
  """``outer_loss``: the loss of ``predict``'s outputs on the task's query set."""

  def outer_loss(meta_params, state, task: types.TaskBatch, key):
    out, state = predict(meta_params, state, task.support, task.query_x, key)
    loss, metrics = loss_fn(out, task.query_y)
    return loss, OuterAux(state, metrics)

  return outer_loss


def batched_outer_loss(
    learner: MetaLearner,
    meta_params: types.Params,
    state: types.ModelState,
    tasks: types.TaskBatch,
    key: types.PRNGKey,
    *,
    task_chunk: int = 0,
):
  """Mean outer loss over the T tasks of ``tasks``.

  Args:
    task_chunk: 0 maps the outer loss over all T tasks at once (``vmap``); k > 0 runs
      the tasks k at a time (``lax.map``), each chunk rematerialized in the backward
      pass, so the step's memory is that of k tasks (on a CPU, where cache reuse
      matters, 1 is also faster). The values are the same up to rounding.

  Returns:
    ``(loss, OuterAux)``: the mean loss, and the task-averaged state and metrics.
  """
  keys = jax.random.split(key, tasks.num_tasks)
  outer_loss = functools.partial(learner.outer_loss, meta_params, state)
  if task_chunk:
    losses_T, aux_T = jax.lax.map(jax.checkpoint(lambda task_key: outer_loss(*task_key)),
                                  (tasks, keys), batch_size=task_chunk)
  else:
    losses_T, aux_T = jax.vmap(outer_loss)(tasks, keys)
  aux = jax.tree.map(lambda x: jnp.mean(x, axis=0), aux_T)
  return jnp.mean(losses_T), aux


class MetaTrainState(NamedTuple):
  """Everything a meta-training run carries from one step to the next."""

  step: jax.Array
  params: types.Params
  model_state: types.ModelState
  opt_state: Any


def init_train_state(
    learner: MetaLearner, outer_tx: optax.GradientTransformation, key
) -> MetaTrainState:
  params, model_state = learner.init(key)
  return MetaTrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      model_state=model_state,
      opt_state=outer_tx.init(params),
  )


def meta_step(
    learner: MetaLearner,
    outer_tx: optax.GradientTransformation,
    train_state: MetaTrainState,
    tasks: types.TaskBatch,
    key: types.PRNGKey,
    *,
    task_chunk: int = 0,
):
  """One outer update on a meta-batch of tasks; pure, to be jitted by the caller.

  A step whose loss or gradient is not finite leaves ``train_state`` unchanged except
  for the step counter, and reports ``finite=False`` so the loop can stop cleanly.

  ``task_chunk`` is ``batched_outer_loss``'s.

  Returns:
    ``(train_state, metrics)`` with ``loss``, ``grad_norm``, ``finite`` and the
    learner's task-averaged metrics.
  """
  (loss, aux), grads = jax.value_and_grad(
      functools.partial(batched_outer_loss, task_chunk=task_chunk), argnums=1, has_aux=True
  )(learner, train_state.params, train_state.model_state, tasks, key)
  updates, opt_state = outer_tx.update(grads, train_state.opt_state, train_state.params)
  params = optax.apply_updates(train_state.params, updates)
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  new, old = (params, aux.state, opt_state), train_state[1:]
  params, model_state, opt_state = jax.tree.map(
      lambda a, b: jnp.where(finite, a, b), new, old
  )
  metrics = {"loss": loss, "grad_norm": grad_norm, "finite": finite, **aux.metrics}
  return MetaTrainState(train_state.step + 1, params, model_state, opt_state), metrics
