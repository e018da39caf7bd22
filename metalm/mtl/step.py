"""The multitask training step: task losses, a balancer, one optax update.

A ``LossBalancer`` needs one backward pass of ``stop_gradient(weights_T) @ losses_T``. A
``GradBalancer`` gets the per-task gradients of the shared parameters (``vmap`` over the
VJP) and its direction replaces their gradient; each task's own parameters
(``params[base.TASK_KEY][task]``) get that task's gradient. With ``rep_grad=True`` the
per-task gradients are taken at the shared representation (the output of
``model.encode``) and the combined one is pulled back through ``encode`` by one VJP
(Sener & Koltun 2018, arXiv 1810.04650); ``decode`` must then read no shared parameters.
"""

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from metalm import types
from metalm.mtl import base, options


class MultiTaskBatch(NamedTuple):
  """Inputs shared by the tasks and the targets of each task."""

  x: Any  # [B, ...]
  y: dict[str, jax.Array]  # Keyed by task name, each [B, ...].


class MultiTaskTrainState(NamedTuple):
  """Everything a multitask run carries from one step to the next."""

  step: jax.Array
  params: types.Params
  model_state: types.ModelState
  opt_state: Any
  balancer_state: base.BalancerState


def init_train_state(
    model: base.MultiTaskModel,
    balancer: base.Balancer,
    tx: optax.GradientTransformation,
    key: types.PRNGKey,
) -> MultiTaskTrainState:
  params, model_state = model.init(key)
  return MultiTaskTrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      model_state=model_state,
      opt_state=tx.init(params),
      # Copies: a balancer may reuse one array in several fields, which a donating
      # step cannot take.
      balancer_state=jax.tree.map(jnp.copy, balancer.init(len(model.tasks))),
  )


def task_losses(tasks, loss_fns, outputs, y):
  """``(losses_T, metrics)`` with each task's metrics under ``<task>/<name>``."""
  losses, metrics = [], {}
  for task in tasks:
    loss, task_metrics = loss_fns[task](outputs[task], y[task])
    losses.append(loss)
    metrics.update({f"{task}/{name}": value for name, value in task_metrics.items()})
  return jnp.stack(losses), metrics


def _per_task_grads(losses_fn, primals, indices_K):
  """``base.per_task_grads``, computing only the rows ``indices_K`` when given (others 0)."""
  if indices_K is None:
    return base.per_task_grads(losses_fn, primals, has_aux=True)
  losses_T, vjp_fn, aux = jax.vjp(losses_fn, primals, has_aux=True)
  num_tasks = losses_T.shape[0]
  eye_KxT = jnp.eye(num_tasks, dtype=losses_T.dtype)[indices_K]
  (rows_K,) = jax.vmap(vjp_fn)(eye_KxT)
  grads_T = jax.tree.map(
      lambda r: jnp.zeros((num_tasks, *r.shape[1:]), r.dtype).at[indices_K].set(r), rows_K)
  return losses_T, grads_T, vjp_fn, aux


def _where(finite, new, old):
  """``new`` if ``finite`` else ``old``; a state whose structure the update changed (one
  sized at its first update) falls back to zeros."""
  if jax.tree.structure(new) != jax.tree.structure(old):
    old = optax.tree.zeros_like(new)
  return jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)


def train_step(
    model: base.MultiTaskModel,
    balancer: base.Balancer,
    tx: optax.GradientTransformation,
    loss_fns: Mapping[str, Callable],
    train_state: MultiTaskTrainState,
    batch: MultiTaskBatch,
    key: types.PRNGKey,
    *,
    rep_grad: bool = False,
):
  """One balanced update; pure, to be jitted by the caller.

  A step whose losses or gradient are not finite leaves ``train_state`` unchanged except
  for the step counter, and reports ``finite=False``.

  Args:
    model: the multitask model.
    balancer: a ``base.LossBalancer`` or ``base.GradBalancer``.
    tx: the optimizer of the model parameters.
    loss_fns: ``loss_fns[task](out, y) -> (loss, metrics)`` (e.g. ``metalm.losses``).
    train_state: the state before the step.
    batch: shared inputs and per-task targets.
    key: randomness for the model (dropout) and the balancer.
    rep_grad: take a GradBalancer's per-task gradients at the shared representation.

  Returns:
    ``(train_state, metrics)``: ``loss`` (sum of the task losses), ``loss/<task>``,
    ``<task>/<metric>``, ``weight/<task>`` when the balancer exposes weights,
    ``grad_norm`` and ``finite``.
  """
  encode_key, decode_key, balancer_key = jax.random.split(key, 3)
  shared, heads = base.split_params(train_state.params)
  # Keeps an empty task entry, so gradients have the structure of the params.
  has_task_key = base.TASK_KEY in train_state.params
  _merge = lambda s, h: {**s, base.TASK_KEY: h} if has_task_key else dict(s)

  def encode(shared, heads):
    return model.encode(_merge(shared, heads), train_state.model_state, batch.x,
                        train=True, key=encode_key)

  def decode_losses(shared, heads, rep, model_state):
    outputs, model_state = model.decode(_merge(shared, heads), model_state, rep,
                                        train=True, key=decode_key)
    losses_T, metrics = task_losses(model.tasks, loss_fns, outputs, batch.y)
    return losses_T, (model_state, metrics)

  def losses_fn(shared, heads):
    rep, model_state = encode(shared, heads)
    return decode_losses(shared, heads, rep, model_state)

  weights_T = None
  if isinstance(balancer, base.LossBalancer):
    losses_T, vjp_fn, (model_state, metrics) = jax.vjp(losses_fn, shared, heads, has_aux=True)
    weights_T, balancer_state = balancer.update(
        jax.lax.stop_gradient(losses_T), train_state.balancer_state, key=balancer_key)
    grads = _merge(*vjp_fn(jax.lax.stop_gradient(weights_T).astype(losses_T.dtype)))
  else:
    indices_K = options.task_indices(train_state.balancer_state)
    if rep_grad:
      rep, encode_vjp, encoded_state = jax.vjp(
          lambda s: encode(s, heads), shared, has_aux=True)
      losses_T, (grads_T, _), vjp_fn, (model_state, metrics) = _per_task_grads(
          lambda rh: decode_losses(shared, rh[1], rh[0], encoded_state), (rep, heads),
          indices_K)
    else:
      losses_T, (grads_T, _), vjp_fn, (model_state, metrics) = _per_task_grads(
          lambda sh: losses_fn(*sh), (shared, heads), indices_K)
    direction, balancer_state = balancer.update(
        grads_T, train_state.balancer_state, losses_T=jax.lax.stop_gradient(losses_T),
        key=balancer_key)
    if rep_grad:
      (direction,) = encode_vjp(direction)
    # Each head gets its own task's gradient: the VJP of the unweighted sum.
    (_, head_grads), = vjp_fn(jnp.ones_like(losses_T))
    grads = _merge(direction, head_grads)
    weights_T = options.weights_of(balancer_state)

  updates, opt_state = tx.update(grads, train_state.opt_state, train_state.params)
  params = optax.apply_updates(train_state.params, updates)
  grad_norm = optax.tree.norm(grads)
  finite = jnp.all(jnp.isfinite(losses_T)) & jnp.isfinite(grad_norm)
  params, model_state, opt_state = _where(
      finite, (params, model_state, opt_state), train_state[1:4])
  balancer_state = _where(finite, balancer_state, train_state.balancer_state)

  metrics = {"loss": jnp.sum(losses_T), **metrics, "grad_norm": grad_norm, "finite": finite}
  for t, task in enumerate(model.tasks):
    metrics[f"loss/{task}"] = losses_T[t]
    if weights_T is not None:
      metrics[f"weight/{task}"] = weights_T[t]
  new_state = MultiTaskTrainState(
      train_state.step + 1, params, model_state, opt_state, balancer_state)
  return new_state, metrics
