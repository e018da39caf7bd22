"""iMAML's implicit gradient against closed forms, unrolled loops and finite differences."""

import closed_forms  # tests/closed_forms.py
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax import test_util

from metalm import losses, meta, models, types
from metalm.data import sinusoid
from metalm.meta import base, imaml, maml
from metalm.models import functional

LAM = 2.0
pytestmark = pytest.mark.usefixtures("strict_promotion")


def linear_model() -> functional.ModelFns:
  init = lambda key: ({"w": jax.random.normal(key, (3, 1))}, {})
  apply = lambda params, state, x, *, train, key=None: (x @ params["w"], state)
  return functional.ModelFns(init, apply)


def tanh_model(hidden=4) -> functional.ModelFns:
  """A smooth 1-hidden-4-1 network (no ReLU kinks for finite differences)."""

  def init(key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return {"w1": jax.random.normal(k1, (1, hidden)), "b1": jax.random.normal(k2, (hidden,)),
            "w2": jax.random.normal(k3, (hidden, 1)) / 2, "b2": jax.random.normal(k4, (1,))}, {}

  def apply(params, state, x, *, train, key=None):
    h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    return h @ params["w2"] + params["b2"][None, :], state

  return functional.ModelFns(init, apply)


def sinusoid_task(key) -> types.TaskBatch:
  tasks = sinusoid.sampler(num_support=5, num_query=4).sample(key, 1)
  return jax.tree.map(lambda x: x[0], tasks)


def outer_grad(learner, params, task):
  f = lambda p: learner.outer_loss(p, {}, task, jax.random.key(0))[0]
  return jax.grad(f)(params)


def unrolled_proximal_grad(model, params, task, *, lr, steps):
  """d/dtheta L_q(phi_T(theta)) through T differentiated steps of proximal GD."""

  def meta_loss(theta):
    def inner(phi):
      out, _ = model.apply(phi, {}, task.support_x, train=True)
      distance = optax.tree.norm(optax.tree.sub(phi, theta), squared=True)
      return losses.mse(out, task.support_y)[0] + 0.5 * LAM * distance

    def body(_, phi):
      return optax.tree.add_scale(phi, -lr, jax.grad(inner)(phi))

    phi = jax.lax.fori_loop(0, steps, body, theta)
    return losses.mse(model.apply(phi, {}, task.query_x, train=False)[0], task.query_y)[0]

  return jax.grad(meta_loss)(params)


def test_implicit_gradient_matches_closed_form_on_linear_regression(x64):
  del x64
  learner = imaml.imaml(linear_model(), losses.mse, inner_tx=optax.sgd(0.1),
                        inner_steps=500, lam=LAM, cg_steps=3)
  params = closed_forms.to_f64(learner.init(jax.random.key(1))[0])
  xs, ys, xq, yq = task = closed_forms.to_f64(closed_forms.linear_task(jax.random.key(2)))
  a_s = 2.0 / xs.shape[0] * xs.T @ xs  # Hessian of the support loss.
  b_s = 2.0 / xs.shape[0] * xs.T @ ys
  eye = jnp.eye(3, dtype=jnp.float64)
  phi = jnp.linalg.solve(a_s + LAM * eye, b_s + LAM * params["w"])
  adapted, _ = learner.adapt(params, {}, task.support, jax.random.key(3))
  np.testing.assert_allclose(adapted["w"], phi, rtol=1e-10, atol=1e-12)
  grad_q = 2.0 / xq.shape[0] * xq.T @ (xq @ phi - yq)
  want = jnp.linalg.solve(eye + a_s / LAM, grad_q)  # d phi / d theta = (I + H / lam)^-1.
  np.testing.assert_allclose(outer_grad(learner, params, task)["w"], want, rtol=1e-9,
                             atol=1e-12)
  assert np.abs(np.asarray(want - grad_q)).max() > 1e-2  # The implicit term matters.


@pytest.mark.parametrize("model_fn", [linear_model, tanh_model])
def test_implicit_gradient_matches_a_long_unrolled_proximal_loop(x64, model_fn):
  del x64
  model = model_fn()
  learner = imaml.imaml(model, losses.mse, inner_tx=optax.sgd(0.1), inner_steps=400,
                        lam=LAM, cg_steps=20)
  params = closed_forms.to_f64(learner.init(jax.random.key(1))[0])
  if model_fn is linear_model:
    task = closed_forms.to_f64(closed_forms.linear_task(jax.random.key(2)))
  else:
    task = closed_forms.to_f64(sinusoid_task(jax.random.key(2)))
  want = unrolled_proximal_grad(model, params, task, lr=0.01, steps=2000)
  got = outer_grad(learner, params, task)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8),
               got, want)


def test_outer_gradient_matches_finite_differences(x64):
  del x64
  learner = imaml.imaml(tanh_model(), losses.mse, inner_tx=optax.sgd(0.1), inner_steps=300,
                        lam=2.0, cg_steps=20)
  params = closed_forms.to_f64(learner.init(jax.random.key(0))[0])
  tasks = closed_forms.to_f64(sinusoid.sampler(num_support=5, num_query=4)
                              .sample(jax.random.key(1), 2))
  f = jax.jit(lambda p: base.batched_outer_loss(learner, p, {}, tasks, jax.random.key(2))[0])
  test_util.check_grads(f, (params,), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_lambda_must_be_positive():
  with pytest.raises(ValueError, match="lam"):
    imaml.imaml(linear_model(), losses.mse, lam=0.0)


def _step_temp_bytes(learner, tasks):
  tx = optax.sgd(1e-3)
  train_state = base.init_train_state(learner, tx, jax.random.key(0))
  step = jax.jit(lambda s, t, k: base.meta_step(learner, tx, s, t, k))
  compiled = step.lower(train_state, tasks, jax.random.key(1)).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_step_memory_does_not_grow_with_inner_steps():
  model = models.build(ml_collections.ConfigDict(dict(name="mlp", hidden=(32, 32),
                                                      num_outputs=1)), (1, 1))
  tasks = sinusoid.sampler(num_support=10, num_query=10).sample(jax.random.key(0), 4)
  temp = {}
  for name, factory in (("imaml", imaml.imaml), ("maml", maml.maml)):
    for steps in (5, 50):
      temp[name, steps] = _step_temp_bytes(factory(model, losses.mse, inner_steps=steps),
                                           tasks)
  assert temp["imaml", 50] == temp["imaml", 5], temp
  assert temp["maml", 50] > 2 * temp["maml", 5], temp


def test_meta_step_runs_under_jit_with_batch_norm():
  """Support-set BatchNorm: the query is normalized by the adapted model's state."""
  model = models.build(ml_collections.ConfigDict(dict(
      name="conv4", num_classes=2, filters=2, norm="support")), (1, 16, 16, 1))
  learner = meta.get("imaml")(model, losses.cross_entropy, inner_steps=3)
  ks = jax.random.split(jax.random.key(1), 2)
  labels = jnp.tile(jnp.arange(2, dtype=jnp.int32), (3, 2))
  tasks = types.TaskBatch(jax.random.normal(ks[0], (3, 4, 16, 16, 1)), labels,
                          jax.random.normal(ks[1], (3, 4, 16, 16, 1)), labels)
  tx = optax.sgd(1e-2)
  train_state = base.init_train_state(learner, tx, jax.random.key(0))
  step = jax.jit(lambda s, t, k: base.meta_step(learner, tx, s, t, k))
  new_state, metrics = step(train_state, tasks, jax.random.key(2))
  assert bool(metrics["finite"]) and int(new_state.step) == 1
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new_state.params,
                         train_state.params)
  assert all(jax.tree.leaves(changed))
