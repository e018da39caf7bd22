"""MAML++ against MAML with its tricks off, one trick at a time, and finite differences."""

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
from metalm.meta import base, maml, maml_plus_plus
from metalm.models import functional

ALPHA = 0.05
pytestmark = pytest.mark.usefixtures("strict_promotion")


def mlp() -> functional.ModelFns:
  config = ml_collections.ConfigDict(dict(name="mlp", hidden=(6,), num_outputs=1))
  return models.build(config, (1, 1))


def conv(norm="transductive") -> functional.ModelFns:
  config = dict(name="conv4", num_classes=3, filters=2, norm=norm)
  return models.build(ml_collections.ConfigDict(config), (1, 16, 16, 1))


def sinusoid_task(key) -> types.TaskBatch:
  tasks = sinusoid.sampler(num_support=5, num_query=4).sample(key, 1)
  return jax.tree.map(lambda x: x[0], tasks)


def image_task(key) -> types.TaskBatch:
  ks = jax.random.split(key, 2)
  labels = jnp.arange(3, dtype=jnp.int32)
  return types.TaskBatch(jax.random.normal(ks[0], (3, 16, 16, 1)), labels,
                         jax.random.normal(ks[1], (6, 16, 16, 1)), jnp.tile(labels, 2))


def state_at(model_state, outer_step=0.0):
  return {"model": model_state, "outer_step": jnp.asarray(outer_step, jnp.float32)}


def value_and_grad(learner, meta_params, state, task):
  f = lambda p, s, t: learner.outer_loss(p, s, t, jax.random.key(0))[0]
  return jax.jit(jax.value_and_grad(f))(meta_params, state, task)


def assert_trees_close(got, want, rtol=1e-5, atol=1e-6):
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=rtol, atol=atol),
               got, want)


@pytest.mark.parametrize("model_name,first_order", [("mlp", False), ("mlp", True),
                                                    ("conv", False)])
def test_all_tricks_off_is_maml(model_name, first_order):
  model = mlp() if model_name == "mlp" else conv()
  task = sinusoid_task(jax.random.key(1)) if model_name == "mlp" else image_task(
      jax.random.key(1))
  loss_fn = losses.mse if model_name == "mlp" else losses.cross_entropy
  kwargs = dict(inner_tx=optax.sgd(ALPHA), inner_steps=2, first_order=first_order)
  learner = maml_plus_plus.maml_plus_plus(model, loss_fn, **kwargs)
  reference = maml.maml(model, loss_fn, **kwargs)
  meta_params, state = learner.init(jax.random.key(0))
  params, model_state = reference.init(jax.random.key(0))
  assert_trees_close(meta_params, {"params": params}, rtol=0, atol=0)
  loss, grads = value_and_grad(learner, meta_params, state, task)
  want_loss, want = value_and_grad(reference, params, model_state, task)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  assert_trees_close(grads["params"], want, rtol=1e-6, atol=1e-7)
  adapted, _ = jax.jit(learner.adapt)(meta_params, state, task.support, jax.random.key(3))
  want_adapted, _ = jax.jit(reference.adapt)(params, model_state, task.support,
                                             jax.random.key(3))
  assert_trees_close(adapted, want_adapted, rtol=1e-6, atol=1e-7)


def test_msl_weights_sum_to_one_and_anneal_to_the_last_step():
  steps, msl_epochs = 5, 10
  weights = np.stack([maml_plus_plus.msl_weights(e, steps, msl_epochs)
                      for e in range(msl_epochs + 3)])
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(weights[0], np.full(steps, 0.2), rtol=1e-6)
  assert np.all(np.diff(weights[:, :-1], axis=0) <= 1e-7)  # Earlier steps fade...
  assert np.all(np.diff(weights[:, -1]) >= -1e-7)  # ...into the last one.
  floor = maml_plus_plus.msl_weights(msl_epochs - 0.1, steps, msl_epochs)
  np.testing.assert_allclose(floor, [0.006] * 4 + [0.976], rtol=1e-5)  # The paper's floor.
  np.testing.assert_array_equal(weights[msl_epochs:], np.eye(steps)[[-1] * 3])
  np.testing.assert_array_equal(maml_plus_plus.msl_weights(0, 1, msl_epochs), [1.0])


def test_multi_step_loss_at_epoch_zero_is_the_mean_of_maml_losses():
  """Uniform weights: the mean over k of MAML's query loss after k = 1..3 steps."""
  model, task, steps = mlp(), sinusoid_task(jax.random.key(1)), 3
  learner = maml_plus_plus.maml_plus_plus(model, losses.mse, inner_tx=optax.sgd(ALPHA),
                                          inner_steps=steps, multi_step_loss=True)
  meta_params, state = learner.init(jax.random.key(0))

  def mean_of_maml(params):
    total = 0.0
    for k in range(1, steps + 1):
      ref = maml.maml(model, losses.mse, inner_tx=optax.sgd(ALPHA), inner_steps=k)
      total = total + ref.outer_loss(params, {}, task, jax.random.key(0))[0]
    return total / steps

  loss, grads = value_and_grad(learner, meta_params, state, task)
  want_loss, want = jax.value_and_grad(mean_of_maml)(meta_params["params"])
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  assert_trees_close(grads["params"], want)
  # Once annealed (epoch >= msl_epochs), only the final step's loss is left.
  late = state_at(state["model"], outer_step=10 * 500)
  final = maml.maml(model, losses.mse, inner_tx=optax.sgd(ALPHA), inner_steps=steps)
  np.testing.assert_allclose(
      learner.outer_loss(meta_params, late, task, jax.random.key(0))[0],
      final.outer_loss(meta_params["params"], {}, task, jax.random.key(0))[0], rtol=1e-6)


@pytest.mark.parametrize("first_order", [False, True])
def test_lslr_with_equal_rates_is_maml(first_order):
  model, task = mlp(), sinusoid_task(jax.random.key(1))
  learner = maml_plus_plus.maml_plus_plus(model, losses.mse, inner_steps=3, learn_rates=True,
                                          init_lr=ALPHA, first_order=first_order)
  reference = maml.maml(model, losses.mse, inner_tx=optax.sgd(ALPHA), inner_steps=3,
                        first_order=first_order)
  meta_params, state = learner.init(jax.random.key(0))
  jax.tree.map(lambda r: np.testing.assert_array_equal(r, np.full(3, ALPHA, np.float32)),
               meta_params["lr"])
  assert jax.tree.structure(meta_params["lr"]) == jax.tree.structure(meta_params["params"])
  loss, grads = value_and_grad(learner, meta_params, state, task)
  want_loss, want = value_and_grad(reference, meta_params["params"], {}, task)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  assert_trees_close(grads["params"], want)
  # Each step's rate gets its own gradient.
  assert all(np.unique(np.asarray(g)).size == 3 for g in jax.tree.leaves(grads["lr"]))


def test_lslr_replaces_the_inner_optimizer():
  with pytest.raises(ValueError, match="inner_tx"):
    maml_plus_plus.maml_plus_plus(mlp(), losses.mse, learn_rates=True,
                                  inner_tx=optax.sgd(0.1))


@pytest.mark.parametrize("adapt_bn,steps", [(False, 2), (True, 1)])
def test_per_step_batch_norm_with_identical_slices_is_shared_batch_norm(adapt_bn, steps):
  model, task = conv(), image_task(jax.random.key(1))
  kwargs = dict(inner_tx=optax.sgd(0.1), inner_steps=steps, adapt_bn=adapt_bn)
  learner = maml_plus_plus.maml_plus_plus(model, losses.cross_entropy, per_step_bn=True,
                                          **kwargs)
  shared = maml_plus_plus.maml_plus_plus(model, losses.cross_entropy, **kwargs)
  meta_params, state = learner.init(jax.random.key(0))
  shared_params, shared_state = shared.init(jax.random.key(0))
  bn = meta_params["params"]["ConvBlock_1"]["BatchNorm_0"]
  assert bn["scale"].shape == (steps, 2)
  assert state["model"]["batch_stats"]["ConvBlock_1"]["BatchNorm_0"]["mean"].shape == (
      steps, 2)
  loss, grads = value_and_grad(learner, meta_params, state, task)
  want_loss, want = value_and_grad(shared, shared_params, shared_state, task)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  for block in range(4):
    name = f"ConvBlock_{block}"
    assert_trees_close(grads["params"][name]["Conv_0"], want["params"][name]["Conv_0"])
    per_step = grads["params"][name]["BatchNorm_0"]
    assert_trees_close(jax.tree.map(lambda g: g.sum(0), per_step),
                       want["params"][name]["BatchNorm_0"])
  assert_trees_close(grads["params"]["head"], want["params"]["head"])
  if steps > 1:  # The slices see different features, so their gradients differ.
    assert not np.allclose(per_step["scale"][0], per_step["scale"][1])


def test_per_step_batch_norm_needs_batch_norm():
  with pytest.raises(ValueError, match="BatchNorm"):
    maml_plus_plus.maml_plus_plus(mlp(), losses.mse, per_step_bn=True).init(
        jax.random.key(0))


def test_more_test_time_steps_reuse_the_last_slices():
  model, task = conv("support"), image_task(jax.random.key(1))
  kwargs = dict(learn_rates=True, per_step_bn=True, adapt_bn=False)
  trained = maml_plus_plus.maml_plus_plus(model, losses.cross_entropy, inner_steps=2,
                                          **kwargs)
  meta_params, state = trained.init(jax.random.key(0))
  for steps in (1, 4):
    learner = maml_plus_plus.maml_plus_plus(model, losses.cross_entropy,
                                            inner_steps=steps, **kwargs)
    out, new_state = learner.predict(meta_params, state, task.support, task.query_x,
                                     jax.random.key(2))
    assert out.shape == (6, 3) and np.all(np.isfinite(out))
    assert jax.tree.structure(new_state) == jax.tree.structure(state)


def test_derivative_order_annealing_switches_inside_one_compiled_step():
  model, task = mlp(), sinusoid_task(jax.random.key(1))
  kwargs = dict(inner_tx=optax.sgd(ALPHA), inner_steps=2)
  learner = maml_plus_plus.maml_plus_plus(model, losses.mse, first_order_epochs=1,
                                          steps_per_epoch=2, **kwargs)
  meta_params, state = learner.init(jax.random.key(0))
  for outer_step, first_order in ((0, True), (1, True), (2, False), (7, False)):
    reference = maml.maml(model, losses.mse, first_order=first_order, **kwargs)
    _, grads = value_and_grad(learner, meta_params, state_at(state["model"], outer_step),
                              task)
    _, want = value_and_grad(reference, meta_params["params"], {}, task)
    assert_trees_close(grads["params"], want)

  tx, traces = optax.sgd(1e-3), []

  def step(train_state, tasks, key):
    traces.append(1)
    return base.meta_step(learner, tx, train_state, tasks, key)

  step = jax.jit(step)
  train_state = base.init_train_state(learner, tx, jax.random.key(0))
  tasks = sinusoid.sampler(num_support=5, num_query=4).sample(jax.random.key(3), 2)
  for i in range(3):
    train_state, metrics = step(train_state, tasks, jax.random.key(i))
    assert bool(metrics["finite"])
  assert len(traces) == 1
  assert float(train_state.model_state["outer_step"]) == 3.0


def test_outer_gradient_matches_finite_differences_mlp(x64):
  del x64
  learner = maml_plus_plus.maml_plus_plus(mlp(), losses.mse, inner_steps=2,
                                          multi_step_loss=True, learn_rates=True,
                                          init_lr=0.02, first_order_epochs=1)
  meta_params, state = learner.init(jax.random.key(0))
  meta_params = closed_forms.to_f64(meta_params)
  leaves, treedef = jax.tree.flatten(meta_params["params"])
  keys = jax.random.split(jax.random.key(99), len(leaves))
  meta_params["params"] = treedef.unflatten(  # Off ReLU kinks (zero biases).
      [p + 0.1 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys,
                                                                         strict=True)])
  meta_params["lr"] = jax.tree.map(  # Unequal rates, so every rate's gradient differs.
      lambda r: r * jax.random.uniform(jax.random.key(3), r.shape, r.dtype, 0.5, 1.5),
      meta_params["lr"])
  state = closed_forms.to_f64(state_at(state["model"], outer_step=2 * 500))  # Epoch 2.
  tasks = closed_forms.to_f64(sinusoid.sampler(num_support=4, num_query=4)
                              .sample(jax.random.key(1), 2))
  f = jax.jit(lambda p: base.batched_outer_loss(learner, p, state, tasks, jax.random.key(2))[0])
  test_util.check_grads(f, (meta_params,), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_builds_from_the_registry():
  config = ml_collections.ConfigDict(dict(name="maml_plus_plus", inner_steps=2,
                                          learn_rates=True, multi_step_loss=True))
  learner = meta.build(config, mlp(), loss_fn=losses.mse)
  meta_params, _ = learner.init(jax.random.key(0))
  assert set(meta_params) == {"params", "lr"}
