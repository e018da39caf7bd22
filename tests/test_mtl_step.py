"""The multitask step on a toy model, and the every-N / task-subsampling options."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from metalm import losses
from metalm.mtl import base, db_mtl, equal_weighting, gradnorm, options, rlw, step

pytestmark = pytest.mark.usefixtures("strict_promotion")

D, H, B = 3, 4, 8


def toy_model(tasks=("a", "b")) -> base.MultiTaskModel:
  """A shared tanh layer and one linear head per task, as pure functions."""

  def init(key):
    shared_key, *head_keys = jax.random.split(key, 1 + len(tasks))
    params = {
        "shared": {"w_DxH": 0.5 * jax.random.normal(shared_key, (D, H))},
        base.TASK_KEY: {t: {"v_Hx1": 0.5 * jax.random.normal(k, (H, 1))}
                        for t, k in zip(tasks, head_keys, strict=True)},
    }
    return params, {"calls": jnp.zeros((), jnp.int32)}

  def encode(params, state, x, *, train, key=None):
    return jnp.tanh(x @ params["shared"]["w_DxH"]), {"calls": state["calls"] + 1}

  def decode(params, state, rep, *, train, key=None):
    return {t: rep @ params[base.TASK_KEY][t]["v_Hx1"] for t in tasks}, state

  return base.MultiTaskModel(init, encode, decode, tuple(tasks))


def toy_batch(key, tasks=("a", "b")):
  """Fresh inputs per key; each task's target function is fixed."""
  task_keys = jax.random.split(jax.random.key(42), len(tasks))
  x_BxD = jax.random.normal(key, (B, D))
  y = {t: jnp.tanh(x_BxD @ jax.random.normal(k, (D, 1))) for t, k in
       zip(tasks, task_keys, strict=True)}
  return step.MultiTaskBatch(x_BxD, y)


LOSS_FNS = {"a": losses.mse, "b": losses.mse, "c": losses.mse, "d": losses.mse}


def run_step(balancer, tx=None, *, rep_grad=False, tasks=("a", "b"), batch=None, state=None):
  model = toy_model(tasks)
  tx = optax.sgd(1.0) if tx is None else tx
  if state is None:
    state = step.init_train_state(model, balancer, tx, jax.random.key(0))
  batch = toy_batch(jax.random.key(1), tasks) if batch is None else batch
  train_step = jax.jit(functools.partial(
      step.train_step, model, balancer, tx, LOSS_FNS, rep_grad=rep_grad))
  return train_step(state, batch, jax.random.key(2)), state


def assert_trees_close(a, b, **kwargs):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **kwargs), a, b)


def test_loss_and_grad_paths_and_rep_grad_agree_for_equal_weighting():
  """One backward pass of the sum, per-task gradients summed, and the representation
  trick (linear in the gradients) give the same update."""
  (loss_path, _), before = run_step(equal_weighting.equal_weighting())
  as_grad = options.from_loss_balancer(equal_weighting.equal_weighting())
  (grad_path, _), _ = run_step(as_grad)
  (rep_path, metrics), _ = run_step(as_grad, rep_grad=True)
  assert_trees_close(loss_path.params, grad_path.params, rtol=1e-5, atol=1e-6)
  assert_trees_close(loss_path.params, rep_path.params, rtol=1e-5, atol=1e-6)
  # sgd(1.0): the update is minus the gradient of the sum of the task losses.
  model = toy_model()
  batch = toy_batch(jax.random.key(1))

  def total(params):
    rep, _ = model.encode(params, {"calls": 0}, batch.x, train=True)
    out, _ = model.decode(params, {}, rep, train=True)
    return sum(losses.mse(out[t], batch.y[t])[0] for t in model.tasks)

  want = jax.tree.map(lambda p, g: p - g, before.params, jax.grad(total)(before.params))
  assert_trees_close(loss_path.params, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["weight/a"], 1.0)
  assert int(loss_path.model_state["calls"]) == 1


def test_heads_get_their_own_unweighted_gradient():
  balancer = options.weighted(lambda gram, s, *, losses_T, key: (jnp.array([3.0, 0.5]), s))
  (new, _), before = run_step(balancer)
  model = toy_model()
  batch = toy_batch(jax.random.key(1))
  for t in model.tasks:
    def task_loss(v, t=t):
      params = {**before.params, base.TASK_KEY: {**before.params[base.TASK_KEY], t: v}}
      rep, _ = model.encode(params, {"calls": 0}, batch.x, train=True)
      return losses.mse(model.decode(params, {}, rep, train=True)[0][t], batch.y[t])[0]

    head = before.params[base.TASK_KEY][t]
    want = jax.tree.map(lambda p, g: p - g, head, jax.grad(task_loss)(head))
    assert_trees_close(new.params[base.TASK_KEY][t], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rep_grad", [False, True])
def test_jitted_steps_decrease_both_losses_and_compile_once(rep_grad):
  traces = []
  model = toy_model()
  balancer = gradnorm.gradnorm(tx=optax.sgd(0.01))
  tx = optax.sgd(0.3)

  def counted_mse(out, y):
    traces.append(None)
    return losses.mse(out, y)

  loss_fns = {"a": counted_mse, "b": losses.mse}
  train_step = jax.jit(functools.partial(step.train_step, model, balancer, tx, loss_fns,
                                         rep_grad=rep_grad))
  state = step.init_train_state(model, balancer, tx, jax.random.key(0))
  first = None
  for i in range(30):
    state, metrics = train_step(state, toy_batch(jax.random.key(i)), jax.random.key(i))
    first = metrics if first is None else first
    if i == 2:
      assert len(traces) == 1
  assert len(traces) == 1
  assert bool(metrics["finite"])
  for t in ("a", "b"):
    assert metrics[f"loss/{t}"] < 0.7 * first[f"loss/{t}"]
  assert {"loss", "grad_norm", "weight/a", "weight/b", "a/mse", "b/mse"} <= set(metrics)


@pytest.mark.parametrize("kind", ["loss", "grad", "rep_grad"])
def test_non_finite_loss_leaves_state_unchanged(kind):
  batch = toy_batch(jax.random.key(1))
  batch = batch._replace(y={**batch.y, "b": batch.y["b"].at[0].set(jnp.nan)})
  balancer = equal_weighting.equal_weighting()
  if kind != "loss":
    balancer = options.every_n(options.from_loss_balancer(balancer), 2)
  (new, metrics), before = run_step(balancer, batch=batch, rep_grad=kind == "rep_grad")
  assert not bool(metrics["finite"])
  jax.tree.map(np.testing.assert_array_equal, new[1:], before[1:])
  assert int(new.step) == 1


def test_every_n_reuses_weights_between_recomputations():
  calls = []

  def weights_fn(gram_TxT, state, *, losses_T, key):
    calls.append(None)
    return jax.nn.softmax(jnp.diagonal(gram_TxT)), state + 1

  balancer = options.every_n(options.weighted(weights_fn, lambda num_tasks: 0), 3)
  update = jax.jit(balancer.update)
  state = balancer.init(2)
  weights = []
  for i in range(7):
    grads_T = {"w": jax.random.normal(jax.random.key(i), (2, 5))}
    direction, state = update(grads_T, state, losses_T=jnp.ones(2), key=jax.random.key(i))
    np.testing.assert_allclose(
        direction["w"], base.combine(state.weights_T, grads_T)["w"], rtol=1e-6)
    weights.append(state.weights_T)
  assert len(calls) == 1  # Traced once; the inner update runs under lax.cond.
  assert int(state.inner.inner) == 3  # Recomputed at updates 0, 3 and 6 only.
  for i in (1, 2, 4, 5):
    np.testing.assert_array_equal(weights[i], weights[i - 1])
  assert not np.allclose(weights[3], weights[2])
  assert not np.allclose(weights[6], weights[5])


def test_every_n_on_a_loss_balancer_and_in_the_step():
  balancer = options.every_n(rlw.rlw(), 2)
  state = balancer.init(3)
  weights = []
  for i in range(4):
    w, state = balancer.update(jnp.ones(3), state, key=jax.random.key(i))
    weights.append(w)
  np.testing.assert_array_equal(weights[1], weights[0])
  np.testing.assert_array_equal(weights[3], weights[2])
  assert not np.allclose(weights[2], weights[1])
  with pytest.raises(TypeError, match="weights_T"):
    options.every_n(db_mtl.db_mtl(), 2).init(2)


def test_subsample_tasks_uses_exactly_k_tasks():
  seen = []

  def weights_fn(grads_K, state, *, losses_T, key):
    seen.append(grads_K["w"].shape[0])
    return jnp.ones(losses_T.shape), state

  num_tasks, k = 5, 2
  balancer = options.subsample_tasks(options.weighted(weights_fn, inputs="grads"), k)
  state = balancer.init(num_tasks)
  grads_T = {"w": jax.random.normal(jax.random.key(0), (num_tasks, 3))}
  subsets = []
  for i in range(6):
    indices_K = state.task_indices_K
    direction, state = balancer.update(grads_T, state, losses_T=jnp.ones(num_tasks),
                                       key=jax.random.key(i))
    assert len(set(np.asarray(indices_K).tolist())) == k
    assert int(jnp.sum(state.weights_T > 0)) == k
    want = num_tasks / k * jnp.sum(grads_T["w"][indices_K], axis=0)
    np.testing.assert_allclose(direction["w"], want, rtol=1e-5)
    subsets.append(tuple(np.asarray(indices_K).tolist()))
  assert set(seen) == {k}
  assert len(set(subsets)) > 1


def test_subsample_tasks_in_the_step_computes_only_k_gradients():
  """The step computes the K sampled rows only; the direction is theirs, scaled by T / k."""
  tasks = ("a", "b", "c", "d")
  inner = options.from_loss_balancer(equal_weighting.equal_weighting())
  balancer = options.subsample_tasks(inner, 2, seed=3)
  (new, metrics), before = run_step(balancer, tasks=tasks, rep_grad=True)
  indices_K = np.asarray(before.balancer_state.task_indices_K)
  # Equal weighting over the sampled pair, scaled by T / k = 2.
  chosen = options.from_loss_balancer(
      base.LossBalancer(lambda n: (), lambda losses_T, s, *, key=None: (
          jnp.zeros(4).at[indices_K].set(2.0), s)))
  (want, _), _ = run_step(chosen, tasks=tasks)
  assert_trees_close(new.params["shared"], want.params["shared"], rtol=1e-5, atol=1e-6)
  assert_trees_close(new.params[base.TASK_KEY], want.params[base.TASK_KEY])
  assert int(jnp.sum(jnp.stack([metrics[f"weight/{t}"] for t in tasks]) > 0)) == 2


@pytest.mark.parametrize("rep_grad", [False, True])
def test_db_mtl_and_gradnorm_run_in_the_step(rep_grad):
  model = toy_model()
  shared_like = base.split_params(jax.eval_shape(model.init, jax.random.key(0))[0])[0]
  for balancer in (db_mtl.db_mtl(grads_like=None if rep_grad else shared_like),
                   options.subsample_tasks(gradnorm.gradnorm(tx=optax.sgd(0.1)), 1)):
    (new, metrics), _ = run_step(balancer, rep_grad=rep_grad)
    assert bool(metrics["finite"])
    assert np.isfinite(np.asarray(metrics["grad_norm"]))


def test_build_sizes_per_parameter_state_from_the_shared_params():
  from metalm import mtl
  shared = {"trunk": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros((2,))}}
  state = mtl.build({"name": "db_mtl"}, shared_params=shared).init(4)
  assert jax.tree.map(jnp.shape, state.ema_T) == {
      "trunk": {"kernel": (4, 3, 2), "bias": (4, 2)}}
  with pytest.raises(ValueError, match="grads_like"):
    mtl.build({"name": "db_mtl", "grads_like": 1})


@pytest.mark.parametrize("name", ["dwa", "famo", "uncertainty", "gradvac", "nash_mtl"])
def test_balancer_state_survives_a_donating_step(name):
  """The loop donates its state; a state holding one buffer twice cannot be donated."""
  from metalm import mtl
  model, tx = toy_model(), optax.sgd(0.1)
  shared, _ = base.split_params(model.init(jax.random.key(0))[0])
  balancer = mtl.build({"name": name}, shared_params=shared)
  loss_fns = {t: losses.mse for t in model.tasks}
  train_step = jax.jit(functools.partial(step.train_step, model, balancer, tx, loss_fns),
                       donate_argnums=0)
  state = step.init_train_state(model, balancer, tx, jax.random.key(0))
  # FAMO and uncertainty weighting run Adam inside, whose int32 count strict promotion
  # rejects (see tests/conftest.py).
  with jax.numpy_dtype_promotion("standard"):
    for i in range(2):
      state, metrics = train_step(state, toy_batch(jax.random.key(i)), jax.random.key(i))
  assert bool(metrics["finite"])
