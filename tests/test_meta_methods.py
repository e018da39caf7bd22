"""ANIL, BOIL, Meta-SGD and Reptile against closed forms, MAML and finite differences."""

import closed_forms  # tests/closed_forms.py
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax import test_util

from metalm import losses, models, types
from metalm.data import sinusoid
from metalm.meta import anil, base, boil, maml, meta_sgd, partial_adapt, reptile
from metalm.models import functional

ALPHA = 0.05
pytestmark = pytest.mark.usefixtures("strict_promotion")


def mlp() -> functional.ModelFns:
  config = ml_collections.ConfigDict(dict(name="mlp", hidden=(6,), num_outputs=1))
  return models.build(config, (1, 1))


def sinusoid_tasks(key, num_tasks) -> types.TaskBatch:
  return sinusoid.sampler(num_support=5, num_query=4).sample(key, num_tasks)


def one_task(tasks: types.TaskBatch) -> types.TaskBatch:
  return jax.tree.map(lambda x: x[0], tasks)


def linear_model() -> functional.ModelFns:
  """f(x) = x @ w with ``params = {"head": {"w": w}}``: a head on fixed features."""
  init = lambda key: ({"head": {"w": jax.random.normal(key, (3, 1))}}, {})
  apply = lambda params, state, x, *, train, key=None: (x @ params["head"]["w"], state)
  return functional.ModelFns(init, apply)


def features_model(identity_body: bool) -> functional.ModelFns:
  """f(x) = (x @ B) @ w with ``params = {"body": {"B": B}, "head": {"w": w}}``."""

  def init(key):
    body_key, head_key = jax.random.split(key)
    body = jnp.eye(3) if identity_body else jax.random.normal(body_key, (3, 3))
    return {"body": {"B": body}, "head": {"w": jax.random.normal(head_key, (3, 1))}}, {}

  def apply(params, state, x, *, train, key=None):
    return x @ params["body"]["B"] @ params["head"]["w"], state

  return functional.ModelFns(init, apply)


def mse_grad(w, x, y):
  """Gradient of mean((x @ w - y)^2) in w, by hand."""
  return 2.0 / x.shape[0] * x.T @ (x @ w - y)


def outer_grad(learner, meta_params, task, state=None):
  state = {} if state is None else state
  f = lambda p: learner.outer_loss(p, state, task, jax.random.key(0))[0]
  return jax.value_and_grad(f)(meta_params)


def assert_trees_close(got, want, **tols):
  tols = {"rtol": 1e-5, "atol": 1e-6, **tols}
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tols), got, want)


# Meta-SGD.


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_sgd_with_equal_rates_is_maml(first_order):
  model = mlp()
  kwargs = dict(inner_steps=2, first_order=first_order)
  learner = meta_sgd.meta_sgd(model, losses.mse, init_lr=ALPHA, **kwargs)
  reference = maml.maml(model, losses.mse, inner_tx=optax.sgd(ALPHA), **kwargs)
  meta_params, state = learner.init(jax.random.key(0))
  task = one_task(sinusoid_tasks(jax.random.key(1), 1))
  loss, grads = outer_grad(learner, meta_params, task, state)
  want_loss, want_grads = outer_grad(reference, meta_params["params"], task, state)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  assert_trees_close(grads["params"], want_grads)


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_sgd_rate_gradient_matches_closed_form(first_order):
  """One step: L_q(w - lr * g_s(w)) has d/dlr = -g_s(w) * grad L_q(adapted)."""
  learner = meta_sgd.meta_sgd(linear_model(), losses.mse, init_lr=ALPHA,
                              first_order=first_order)
  meta_params, _ = learner.init(jax.random.key(1))
  rates = jax.random.uniform(jax.random.key(3), (3, 1), minval=0.01, maxval=0.1)
  meta_params["lr"]["head"]["w"] = rates
  xs, ys, xq, yq = task = closed_forms.linear_task(jax.random.key(2))
  w = meta_params["params"]["head"]["w"]
  g_s = mse_grad(w, xs, ys)
  g_q = mse_grad(w - rates * g_s, xq, yq)
  _, grads = outer_grad(learner, meta_params, task)
  np.testing.assert_allclose(grads["lr"]["head"]["w"], -g_s * g_q, rtol=1e-5, atol=1e-6)
  a_s = 2.0 / xs.shape[0] * xs.T @ xs
  want_w = g_q if first_order else g_q - a_s @ (rates * g_q)
  np.testing.assert_allclose(grads["params"]["head"]["w"], want_w, rtol=1e-5, atol=1e-6)


def test_meta_sgd_init_has_one_rate_per_parameter_entry():
  model = mlp()
  meta_params, _ = meta_sgd.meta_sgd(model, losses.mse, init_lr=0.3).init(
      jax.random.key(0))
  params, _ = model.init(jax.random.key(0))
  assert_trees_close(meta_params["params"], params)
  jax.tree.map(lambda r, p: np.testing.assert_array_equal(r, np.full(p.shape, 0.3, p.dtype)),
               meta_params["lr"], params)


# ANIL and BOIL.


@pytest.mark.parametrize("first_order", [False, True])
def test_anil_with_identity_body_is_maml_on_the_head(first_order):
  """With f(x) = x @ I @ w the head's meta-gradient is MAML's on linear regression."""
  learner = anil.anil(features_model(identity_body=True), losses.mse,
                      inner_tx=optax.sgd(ALPHA), first_order=first_order)
  meta_params, _ = learner.init(jax.random.key(1))
  xs, ys, xq, yq = task = closed_forms.linear_task(jax.random.key(2))
  w = meta_params["head"]["w"]
  g_q = mse_grad(w - ALPHA * mse_grad(w, xs, ys), xq, yq)
  a_s = 2.0 / xs.shape[0] * xs.T @ xs
  want = g_q if first_order else (jnp.eye(3) - ALPHA * a_s) @ g_q
  _, grads = outer_grad(learner, meta_params, task)
  np.testing.assert_allclose(grads["head"]["w"], want, rtol=1e-5, atol=1e-6)
  # A head-only model gives the same as MAML on it.
  head_only = {"head": meta_params["head"]}
  reference = maml.maml(linear_model(), losses.mse, inner_tx=optax.sgd(ALPHA),
                        first_order=first_order)
  _, want_grads = outer_grad(reference, head_only, task)
  _, anil_grads = outer_grad(
      anil.anil(linear_model(), losses.mse, inner_tx=optax.sgd(ALPHA),
                first_order=first_order), head_only, task)
  assert_trees_close(anil_grads, want_grads)


@pytest.mark.parametrize("first_order", [False, True])
def test_anil_body_gradient(first_order):
  """f(x) = x @ B @ w, one head step: the body's gradient through the adapted head."""
  learner = anil.anil(features_model(identity_body=False), losses.mse,
                      inner_tx=optax.sgd(ALPHA), first_order=first_order)
  meta_params, _ = learner.init(jax.random.key(1))
  xs, ys, xq, yq = task = closed_forms.linear_task(jax.random.key(2))
  _, grads = outer_grad(learner, meta_params, task)

  def explicit(params):
    body, w = params["body"]["B"], params["head"]["w"]
    step = mse_grad(w, xs @ body, ys)
    if first_order:
      step = jax.lax.stop_gradient(step)
    return jnp.mean((xq @ body @ (w - ALPHA * step) - yq) ** 2)

  assert_trees_close(grads, jax.grad(explicit)(meta_params))
  body, w = meta_params["body"]["B"], meta_params["head"]["w"]
  adapted = w - ALPHA * mse_grad(w, xs @ body, ys)
  residual = xq @ body @ adapted - yq
  direct = 2.0 / xq.shape[0] * xq.T @ residual @ adapted.T  # Adapted head held fixed.
  if first_order:
    np.testing.assert_allclose(grads["body"]["B"], direct, rtol=1e-5, atol=1e-6)
  else:  # The second-order path through the adapted head matters here.
    assert np.abs(np.asarray(grads["body"]["B"] - direct)).max() > 1e-3


@pytest.mark.parametrize("factory,adapted", [(anil.anil, "head"), (boil.boil, "body")])
def test_adapt_takes_one_sgd_step_on_one_part_only(factory, adapted):
  model = mlp()
  learner = factory(model, losses.mse, inner_tx=optax.sgd(0.1))
  params, state = learner.init(jax.random.key(0))
  support = one_task(sinusoid_tasks(jax.random.key(1), 1)).support
  new, _ = learner.adapt(params, state, support, jax.random.key(2))
  grads = jax.grad(lambda p: losses.mse(model.apply(p, state, support.x, train=True)[0],
                                        support.y)[0])(params)
  stepped = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
  for name in params:
    part = "head" if name == "head" else "body"
    if part == adapted:
      assert_trees_close(new[name], stepped[name])
      assert not np.allclose(new[name]["kernel"], params[name]["kernel"])
    else:
      jax.tree.map(np.testing.assert_array_equal, new[name], params[name])


def test_partial_adaptation_needs_a_head():
  params = {"Dense_0": {"kernel": jnp.ones((1, 1))}}
  for part in partial_adapt.PARTS:
    with pytest.raises(ValueError, match="head"):
      partial_adapt.split(params, part)


# Reptile.


@pytest.mark.parametrize("include_query", [False, True])
def test_reptile_one_step_matches_closed_form(include_query):
  learner = reptile.reptile(linear_model(), losses.mse, inner_tx=optax.sgd(ALPHA),
                            inner_steps=1, include_query=include_query)
  params, _ = learner.init(jax.random.key(1))
  xs, ys, xq, yq = task = closed_forms.linear_task(jax.random.key(2))
  if include_query:
    xs, ys = jnp.concatenate([xs, xq]), jnp.concatenate([ys, yq])
  w = params["head"]["w"]
  adapted = w - ALPHA * mse_grad(w, xs, ys)
  if not include_query:
    got, _ = learner.adapt(params, {}, task.support, jax.random.key(3))
    np.testing.assert_allclose(got["head"]["w"], adapted, rtol=1e-5, atol=1e-6)
  (loss, aux), grads = jax.value_and_grad(learner.outer_loss, has_aux=True)(
      params, {}, task, jax.random.key(0))
  np.testing.assert_allclose(grads["head"]["w"], w - adapted, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(loss, 0.5 * jnp.sum((w - adapted) ** 2), rtol=1e-5)
  np.testing.assert_allclose(aux.metrics["query_loss"], jnp.mean((xq @ adapted - yq) ** 2),
                             rtol=1e-5)


def test_reptile_meta_step_moves_toward_mean_adapted_weights():
  eps = 0.5
  learner = reptile.reptile(linear_model(), losses.mse, inner_tx=optax.sgd(ALPHA),
                            inner_steps=1)
  tx = optax.sgd(eps)
  train_state = base.init_train_state(learner, tx, jax.random.key(1))
  tasks = [closed_forms.linear_task(jax.random.key(k)) for k in range(3)]
  batch = jax.tree.map(lambda *xs: jnp.stack(xs), *tasks)
  step = jax.jit(lambda s, t, k: base.meta_step(learner, tx, s, t, k))
  new_state, metrics = step(train_state, batch, jax.random.key(0))
  w = train_state.params["head"]["w"]
  direction = sum(ALPHA * mse_grad(w, t.support_x, t.support_y) for t in tasks) / 3
  np.testing.assert_allclose(new_state.params["head"]["w"], w - eps * direction,
                             rtol=1e-5, atol=1e-6)
  assert bool(metrics["finite"]) and "query_loss" in metrics


# Finite differences and the meta step.


@pytest.mark.parametrize("factory", [anil.anil, boil.boil, meta_sgd.meta_sgd])
def test_outer_gradient_matches_finite_differences_mlp(x64, factory):
  del x64
  kwargs = dict(inner_steps=2)
  if factory is not meta_sgd.meta_sgd:
    kwargs["inner_tx"] = optax.sgd(0.1)
  learner = factory(mlp(), losses.mse, **kwargs)
  meta_params, state = learner.init(jax.random.key(0))
  meta_params = closed_forms.to_f64(meta_params)
  if factory is meta_sgd.meta_sgd:  # Unequal rates, so the rate gradients differ.
    meta_params["lr"] = jax.tree.map(
        lambda r: r * jax.random.uniform(jax.random.key(3), r.shape, r.dtype, 5.0, 10.0),
        meta_params["lr"])
  tasks = closed_forms.to_f64(sinusoid_tasks(jax.random.key(1), 2))
  f = jax.jit(lambda p: base.batched_outer_loss(learner, p, state, tasks, jax.random.key(2))[0])
  test_util.check_grads(f, (meta_params,), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "factory", [anil.anil, boil.boil, meta_sgd.meta_sgd, reptile.reptile])
def test_meta_step_runs_under_jit(factory):
  learner = factory(mlp(), losses.mse)
  tx = optax.sgd(1e-2)
  train_state = base.init_train_state(learner, tx, jax.random.key(0))
  step = jax.jit(lambda s, t, k: base.meta_step(learner, tx, s, t, k))
  new_state, metrics = step(train_state, sinusoid_tasks(jax.random.key(1), 4),
                            jax.random.key(2))
  assert bool(metrics["finite"]) and np.isfinite(metrics["loss"])
  assert int(new_state.step) == 1
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new_state.params,
                         train_state.params)
  assert any(jax.tree.leaves(changed))


@pytest.mark.parametrize("task_chunk", [1, 2, 3])
def test_tasks_in_chunks_give_the_vmapped_meta_step(task_chunk):
  """Tasks run k at a time (rematerialized) give the step of all tasks at once; 3 does
  not divide the 4 tasks, so the remainder path is taken too."""
  learner = maml.maml(mlp(), losses.mse, inner_tx=optax.sgd(ALPHA), inner_steps=2)
  tx = optax.sgd(0.1)
  train_state = base.init_train_state(learner, tx, jax.random.key(0))
  tasks = sinusoid_tasks(jax.random.key(1), 4)
  step = lambda chunk: jax.jit(lambda s, t, k: base.meta_step(
      learner, tx, s, t, k, task_chunk=chunk))(train_state, tasks, jax.random.key(2))
  (want, want_metrics), (got, got_metrics) = step(0), step(task_chunk)
  assert_trees_close(got.params, want.params)
  assert_trees_close(got_metrics, want_metrics)
