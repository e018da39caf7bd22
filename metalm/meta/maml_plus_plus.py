"""MAML++: how to train your MAML (Antoniou et al. 2019, arXiv:1810.09502).

Each of the paper's fixes is a switch; with all of them off this is ``maml.maml``.

  * ``multi_step_loss`` (MSL): the outer loss weighs the query loss after every inner
    step, the weights annealed toward the last step over ``msl_epochs``.
  * ``learn_rates`` (LSLR): one learned inner rate per parameter tensor and step.
  * ``per_step_bn`` (BNRS + BNWB): every BatchNorm layer holds one set of scale,
    bias and statistics per inner step.
  * ``first_order_epochs`` (DA): first-order inner loop for the first epochs.
  * cosine annealing of the outer rate (CA) is the outer optimizer's schedule.

Per-step BatchNorm needs no special model: the leaves of every module that holds
``batch_stats`` (the BatchNorm layers) get a leading ``[inner_steps]`` axis, and
step ``i`` runs the ordinary model on slice ``i`` (the last slice for later steps).

The annealing schedules need the outer step, which lives in the learner's state:
``state = {"model": model_state, "outer_step": float32 scalar}``; ``outer_loss``
returns it incremented, so ``base.meta_step`` and the loop carry it unchanged, it
is checkpointed, and one compiled step serves every phase. Epochs are
``outer_step // steps_per_epoch``.
"""

import jax
import jax.numpy as jnp
import optax

from metalm import types
from metalm.meta import base
from metalm.models import functional

# MSL's floor on each non-final weight, times the number of steps (the paper's code).
MSL_MIN_WEIGHT = 0.03


def msl_weights(epoch, num_steps: int, msl_epochs: int) -> jax.Array:
  """The ``[num_steps]`` importance of each step's query loss at ``epoch``.

  Uniform at epoch 0; each non-final weight falls linearly by
  ``1 / (num_steps * msl_epochs)`` per epoch to a floor of ``0.03 / num_steps`` and
  the final weight takes up the rest, so the weights always sum to 1. From epoch
  ``msl_epochs`` on, only the final step counts.
  """
  epoch = jnp.asarray(epoch, jnp.float32)
  final_only = jnp.zeros((num_steps,), jnp.float32).at[-1].set(1.0)
  if msl_epochs <= 0:
    return final_only
  decay = 1.0 / num_steps / msl_epochs
  floor = MSL_MIN_WEIGHT / num_steps
  early = jnp.maximum(1.0 / num_steps - epoch * decay, floor)
  last = jnp.minimum(1.0 / num_steps + epoch * (num_steps - 1) * decay,
                     1.0 - (num_steps - 1) * floor)
  annealed = jnp.concatenate([jnp.full((num_steps - 1,), early), last[None]])
  return jnp.where(epoch < msl_epochs, annealed, final_only)


def norm_modules(model_state: types.ModelState) -> frozenset[tuple[str, ...]]:
  """Paths of the modules holding ``batch_stats`` (the BatchNorm layers)."""
  paths = set()

  def visit(tree, path):
    for name, value in tree.items():
      if isinstance(value, dict):
        visit(value, path + (name,))
      else:
        paths.add(path)

  visit(dict(model_state).get("batch_stats", {}), ())
  return frozenset(paths)


def _map_modules(fn, tree, modules, path=()):
  """Applies ``fn`` to every leaf under a module path in ``modules``."""
  if path in modules:
    return jax.tree.map(fn, tree)
  if not isinstance(tree, dict):
    return tree
  return {k: _map_modules(fn, v, modules, path + (k,)) for k, v in tree.items()}


def _partition(tree, modules, path=()):
  """``(rest, norm)``: nested dicts without / with only the modules in ``modules``."""
  rest, norm = {}, {}
  for name, value in tree.items():
    here = path + (name,)
    if here in modules:
      norm[name] = value
    elif isinstance(value, dict):
      rest[name], norm[name] = _partition(value, modules, here)
      if not norm[name]:
        del norm[name]
    else:
      rest[name] = value
  return rest, norm


def _merge(a, b):
  """Inverse of ``_partition``."""
  out = dict(a)
  for name, value in b.items():
    out[name] = _merge(out[name], value) if name in out else value
  return out


def _take(x, i):
  """Slice ``i`` of ``x``'s leading step axis (the last slice for later steps)."""
  return jnp.asarray(x)[jnp.minimum(i, x.shape[0] - 1)]


def _put(x, value, i):
  return jnp.asarray(x).at[jnp.minimum(i, x.shape[0] - 1)].set(value)


def maml_plus_plus(
    model: functional.ModelFns,
    loss_fn,
    *,
    inner_tx: optax.GradientTransformation | None = None,
    inner_steps: int = 1,
    multi_step_loss: bool = False,
    msl_epochs: int = 10,
    learn_rates: bool = False,
    init_lr: float = 0.1,
    per_step_bn: bool = False,
    adapt_bn: bool = True,
    first_order: bool = False,
    first_order_epochs: int = 0,
    steps_per_epoch: int = 500,
    remat: bool = False,
) -> base.MetaLearner:
  """MAML with the MAML++ fixes, each behind its own switch.

  Meta-parameters are ``{"params": model_params}``, plus ``"lr"`` with LSLR: one
  ``[inner_steps]`` vector per adapted parameter tensor. With ``per_step_bn`` the
  BatchNorm leaves of ``params`` and of the model state have a leading
  ``[inner_steps]`` axis. ``adapt`` returns the parameters and model state of the
  last step's slice, ready for ``model.apply``.

  Args:
    model: the model's pure functions.
    loss_fn: ``loss(out, y) -> (loss, metrics)`` for one set.
    inner_tx: inner optimizer without LSLR; SGD with rate 0.01 if None.
    inner_steps: inner steps on the support set (also the number of per-step rates
      and BatchNorm slices; more steps at test time reuse the last ones).
    multi_step_loss: MSL, the annealed per-step query losses.
    msl_epochs: epochs over which MSL anneals to the final step's loss alone.
    learn_rates: LSLR, learned per-tensor per-step inner SGD rates.
    init_lr: initial LSLR rate.
    per_step_bn: per-step BatchNorm weights and statistics.
    adapt_bn: whether BatchNorm scale and bias take inner steps (MAML: yes; the
      paper's MAML++ runs: no, they are meta-learned only).
    first_order: first-order inner loop throughout.
    first_order_epochs: first-order inner loop for the first epochs, then second
      order (derivative-order annealing).
    steps_per_epoch: outer steps per epoch (500 in the paper).
    remat: rematerialize inner steps in the backward pass to save memory.

  Returns:
    A ``base.MetaLearner`` whose state is ``{"model", "outer_step"}``.

  Reference: Antoniou, Edwards, Storkey 2019, arXiv:1810.09502.
  """
  if learn_rates and inner_tx is not None:
    raise ValueError("learn_rates (LSLR) makes the inner optimizer SGD with learned "
                     "rates; drop inner_tx / config.method.inner_optimizer.")
  if multi_step_loss and inner_steps < 1:
    raise ValueError("multi_step_loss needs inner_steps >= 1.")
  inner_tx = optax.sgd(0.01) if inner_tx is None else inner_tx

  def init(key):
    params, model_state = model.init(key)
    modules = norm_modules(model_state)
    if per_step_bn:
      if not modules:
        raise ValueError("per_step_bn needs a model with BatchNorm layers.")
      stack = lambda x: jnp.broadcast_to(x, (inner_steps,) + x.shape)
      params = _map_modules(stack, params, modules)
      model_state = {**model_state,
                     "batch_stats": jax.tree.map(stack, model_state["batch_stats"])}
    meta_params = {"params": params}
    if learn_rates:
      adapted, _ = _partition(params, frozenset() if adapt_bn else modules)
      meta_params["lr"] = jax.tree.map(
          lambda p: jnp.full((inner_steps,), init_lr, p.dtype), adapted)
    return meta_params, {"model": model_state, "outer_step": jnp.zeros((), jnp.float32)}

  def at_step(params, model_state, i):
    """The model's parameters and state of inner step ``i``."""
    if not per_step_bn:
      return params, model_state
    modules = norm_modules(model_state)
    params = _map_modules(lambda x: _take(x, i), params, modules)
    stats = jax.tree.map(lambda x: _take(x, i), model_state["batch_stats"])
    return params, {**model_state, "batch_stats": stats}

  def store(model_state, new_state, i):
    """Writes the model state of step ``i`` into its slice."""
    if not per_step_bn:
      return new_state
    stats = jax.tree.map(lambda x, v: _put(x, v, i), model_state["batch_stats"],
                         new_state["batch_stats"])
    return {**new_state, "batch_stats": stats}

  def inner(meta_params, model_state, support: types.Batch, key, *, first_order,
            query=None):
    """The inner loop; with ``query``, also each step's query loss and metrics."""
    params = meta_params["params"]
    frozen_modules = frozenset() if adapt_bn else norm_modules(model_state)
    adapted, frozen = _partition(params, frozen_modules)

    def support_loss(adapted, model_state, step_key, i):
      p, s = at_step(_merge(adapted, frozen), model_state, i)
      out, s = model.apply(p, s, support.x, train=True, key=step_key)
      return loss_fn(out, support.y)[0], store(model_state, s, i)

    def step(carry, xs):
      adapted, opt_state, model_state = carry
      i, step_key = xs
      (loss, model_state), grads = jax.value_and_grad(support_loss, has_aux=True)(
          adapted, model_state, step_key, i)
      if first_order:
        grads = jax.lax.stop_gradient(grads)
      if learn_rates:
        updates = jax.tree.map(lambda g, r: -_take(r, i) * g, grads, meta_params["lr"])
      else:
        updates, opt_state = inner_tx.update(grads, opt_state, adapted)
      adapted = optax.apply_updates(adapted, updates)
      outputs = loss
      if query is not None:
        p, s = at_step(_merge(adapted, frozen), model_state, i)
        out, _ = functional.predict_query(model, p, s, support.x, query.x,
                                          key=jax.random.fold_in(step_key, 1))
        outputs = (loss, *loss_fn(out, query.y))
      return (adapted, opt_state, model_state), outputs

    if remat:
      step = jax.checkpoint(step)
    opt_state = () if learn_rates else inner_tx.init(adapted)
    xs = (jnp.arange(inner_steps), jax.random.split(key, inner_steps))
    (adapted, _, model_state), outputs = jax.lax.scan(
        step, (adapted, opt_state, model_state), xs)
    return _merge(adapted, frozen), model_state, outputs

  last = max(inner_steps - 1, 0)

  def adapt(meta_params, state, support: types.Batch, key):
    params, model_state, _ = inner(meta_params, state["model"], support, key,
                                   first_order=first_order)
    return at_step(params, model_state, last)

  predict = base.adapted_predict(model, adapt)

  def task_loss(meta_params, state, task: types.TaskBatch, key, first_order):
    adapt_key, query_key = jax.random.split(key)
    if not multi_step_loss:
      params, model_state, _ = inner(meta_params, state["model"], task.support,
                                     adapt_key, first_order=first_order)
      p, s = at_step(params, model_state, last)
      out, s = functional.predict_query(model, p, s, task.support_x, task.query_x,
                                        key=query_key)
      loss, metrics = loss_fn(out, task.query_y)
      return loss, (store(model_state, s, last), metrics)
    _, model_state, (_, losses, metrics) = inner(
        meta_params, state["model"], task.support, adapt_key, first_order=first_order,
        query=task.query)
    epoch = jnp.floor(state["outer_step"] / steps_per_epoch)
    weights = msl_weights(epoch, inner_steps, msl_epochs).astype(losses.dtype)
    return jnp.sum(weights * losses), (model_state, jax.tree.map(lambda m: m[-1], metrics))

  def outer_loss(meta_params, state, task: types.TaskBatch, key):
    args = (meta_params, state, task, key)
    if first_order or first_order_epochs <= 0:
      loss, (model_state, metrics) = task_loss(*args, first_order)
    else:
      epoch = jnp.floor(state["outer_step"] / steps_per_epoch)
      loss, (model_state, metrics) = jax.lax.cond(
          epoch < first_order_epochs,
          lambda: task_loss(*args, True),
          lambda: task_loss(*args, False))
    new_state = {"model": model_state, "outer_step": state["outer_step"] + 1.0}
    return loss, base.OuterAux(new_state, metrics)

  def predict_with_state(meta_params, state, support, query_x, key):
    out, model_state = predict(meta_params, state, support, query_x, key)
    return out, {**state, "model": store(state["model"], model_state, last)}

  return base.MetaLearner(init, adapt, outer_loss, predict_with_state)
