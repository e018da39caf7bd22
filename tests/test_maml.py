"""MAML / FOMAML against closed forms, finite differences and tracing counts."""

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
from metalm.meta import base
from metalm.models import functional

ALPHA = 0.05
pytestmark = pytest.mark.usefixtures("strict_promotion")


def linear_model() -> functional.ModelFns:
  """f(x) = x @ w, with no state."""
  init = lambda key: ({"w": jax.random.normal(key, (3, 1))}, {})
  apply = lambda params, state, x, *, train, key=None: (x @ params["w"], state)
  return functional.ModelFns(init, apply)


def analytic_meta_gradient(w, task, first_order):
  """d/dw L_q(w - alpha grad L_s(w)) for mean squared error, by hand."""
  xs, ys, xq, yq = task
  a_s = 2.0 / xs.shape[0] * xs.T @ xs
  adapted = w - ALPHA * (2.0 / xs.shape[0]) * xs.T @ (xs @ w - ys)
  grad_q = 2.0 / xq.shape[0] * xq.T @ (xq @ adapted - yq)
  if first_order:
    return grad_q
  return (jnp.eye(w.shape[0]) - ALPHA * a_s) @ grad_q


def outer_grad(learner, params, task):
  loss_fn = lambda p: learner.outer_loss(p, {}, task, jax.random.key(0))[0]
  return jax.grad(loss_fn)(params)


def test_second_order_meta_gradient_matches_closed_form():
  learner = meta.get("maml")(linear_model(), losses.mse, inner_tx=optax.sgd(ALPHA))
  params, _ = learner.init(jax.random.key(1))
  task = closed_forms.linear_task(jax.random.key(2))
  got = outer_grad(learner, params, task)["w"]
  want = analytic_meta_gradient(params["w"], task, first_order=False)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # The second-order term matters here, so this test can tell the two apart.
  fo = analytic_meta_gradient(params["w"], task, first_order=True)
  assert np.abs(np.asarray(want - fo)).max() > 1e-3


def test_first_order_meta_gradient_matches_closed_form():
  learner = meta.get("fomaml")(linear_model(), losses.mse, inner_tx=optax.sgd(ALPHA))
  params, _ = learner.init(jax.random.key(1))
  task = closed_forms.linear_task(jax.random.key(2))
  got = outer_grad(learner, params, task)["w"]
  want = analytic_meta_gradient(params["w"], task, first_order=True)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_zero_inner_steps_is_the_plain_query_loss():
  model = models.build(
      ml_collections.ConfigDict(dict(name="mlp", hidden=(8,), num_outputs=1)), (1, 1)
  )
  learner = meta.get("maml")(model, losses.mse, inner_steps=0)
  params, state = learner.init(jax.random.key(0))
  task = jax.tree.map(lambda x: x[0], sinusoid.sampler(num_support=5, num_query=7)
                      .sample(jax.random.key(1), 1))
  loss, _ = learner.outer_loss(params, state, task, jax.random.key(2))
  out, _ = model.apply(params, state, task.query_x, train=False)
  np.testing.assert_allclose(loss, jnp.mean((out - task.query_y) ** 2), rtol=1e-6)
  adapted, _ = learner.adapt(params, state, task.support, jax.random.key(3))
  jax.tree.map(np.testing.assert_array_equal, adapted, params)


def _jitter(params, scale=0.1):
  """Moves params off exact ReLU kinks before finite differences.

  Flax initializes biases to zero, so a unit whose inputs are all zero sits exactly
  on its kink, where central differences average the two one-sided slopes.
  """
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(99), len(leaves))
  return treedef.unflatten([
      p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)
  ])


def test_outer_gradient_matches_finite_differences_mlp(x64):
  del x64
  model = models.build(
      ml_collections.ConfigDict(dict(name="mlp", hidden=(6, 6), num_outputs=1)), (1, 1)
  )
  # Second order only: FOMAML's gradient is deliberately not the true gradient.
  learner = meta.get("maml")(model, losses.mse, inner_tx=optax.sgd(0.1), inner_steps=2)
  params, state = learner.init(jax.random.key(0))
  params = _jitter(closed_forms.to_f64(params))
  tasks = closed_forms.to_f64(sinusoid.sampler(num_support=4, num_query=4)
                  .sample(jax.random.key(1), 2))
  f = jax.jit(lambda p: base.batched_outer_loss(learner, p, state, tasks, jax.random.key(2))[0])
  test_util.check_grads(f, (params,), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", ["transductive", "support"])
def test_outer_gradient_matches_finite_differences_conv_with_batch_norm(x64, norm):
  del x64
  model = models.build(
      ml_collections.ConfigDict(dict(name="conv4", num_classes=3, filters=2, norm=norm)),
      (1, 16, 16, 1),
  )
  learner = meta.get("maml")(model, losses.mse, inner_tx=optax.sgd(0.1))
  params, state = learner.init(jax.random.key(0))
  params, state = _jitter(closed_forms.to_f64(params)), closed_forms.to_f64(state)
  ks = jax.random.split(jax.random.key(1), 4)
  task = types.TaskBatch(
      jax.random.normal(ks[0], (3, 16, 16, 1), jnp.float64),
      jax.random.normal(ks[1], (3, 3), jnp.float64),
      jax.random.normal(ks[2], (4, 16, 16, 1), jnp.float64),
      jax.random.normal(ks[3], (4, 3), jnp.float64),
  )
  f = jax.jit(lambda p: learner.outer_loss(p, state, task, jax.random.key(2))[0])
  # eps=1e-6: a step of 1e-4 crosses ReLU / max-pool kinks of this tiny net.
  # Flax's BatchNorm promotes its statistics with float32 internally, which strict
  # promotion rejects for float64 inputs.
  with jax.numpy_dtype_promotion("standard"):
    test_util.check_grads(f, (params,), order=1, modes=["rev"], atol=1e-4, rtol=1e-4,
                          eps=1e-6)


def test_meta_step_compiles_once_for_fresh_data():
  model = models.build(
      ml_collections.ConfigDict(dict(name="mlp", hidden=(8,), num_outputs=1)), (1, 1)
  )
  learner = meta.get("maml")(model, losses.mse)
  tx = optax.sgd(1e-3)
  traces = []

  def step(state, tasks, key):
    traces.append(1)
    return base.meta_step(learner, tx, state, tasks, key)

  step = jax.jit(step, donate_argnums=0)
  state = base.init_train_state(learner, tx, jax.random.key(0))
  sampler = sinusoid.sampler(num_support=5, num_query=5)
  losses_seen = []
  for i in range(3):
    tasks = sampler.sample(jax.random.key(10 + i), 4)
    state, metrics = step(state, tasks, jax.random.key(i))
    losses_seen.append(float(metrics["loss"]))
  assert len(traces) == 1
  assert int(state.step) == 3
  assert len(set(losses_seen)) == 3  # The data really was fresh.


def test_meta_step_averages_task_gradients():
  """The vmapped meta-gradient equals the mean of per-task gradients."""
  learner = meta.get("maml")(linear_model(), losses.mse, inner_tx=optax.sgd(ALPHA))
  params, _ = learner.init(jax.random.key(1))
  tasks = [closed_forms.linear_task(jax.random.key(k)) for k in range(4)]
  batch = jax.tree.map(lambda *xs: jnp.stack(xs), *tasks)
  got = jax.grad(lambda p: base.batched_outer_loss(
      learner, p, {}, batch, jax.random.key(0))[0])(params)["w"]
  want = sum(analytic_meta_gradient(params["w"], t, False) for t in tasks) / 4
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
