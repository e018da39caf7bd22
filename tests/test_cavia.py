"""CAVIA and context models against closed forms, Conv-4 and finite differences."""

import closed_forms  # tests/closed_forms.py
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax import test_util

from experiments.sinusoid.configs import cavia as sinusoid_cavia
from experiments.sinusoid.configs import maml as sinusoid_maml
from metalm import losses, meta, models, types
from metalm.data import sinusoid
from metalm.meta import base, cavia
from metalm.models import context, functional
from metalm.train import config_check, optim

ALPHA = 0.3
NUM_CONTEXT = 2
pytestmark = pytest.mark.usefixtures("strict_promotion")


def context_mlp(num_context=3) -> functional.ModelFns:
  config = dict(name="context_mlp", hidden=(6,), num_outputs=1, num_context=num_context)
  return models.build(ml_collections.ConfigDict(config), (1, 1))


def linear_context_model() -> functional.ModelFns:
  """f(x) = [x, c] @ W: a linear model on the inputs and the context."""
  init = lambda key: ({"w": jax.random.normal(key, (3 + NUM_CONTEXT, 1))}, {})
  apply = lambda params, state, x, *, train, key=None: (x @ params["w"], state)
  return context.with_context(functional.ModelFns(init, apply), NUM_CONTEXT)


def sinusoid_tasks(key, num_tasks) -> types.TaskBatch:
  return sinusoid.sampler(num_support=5, num_query=4).sample(key, num_tasks)


def outer_grad(learner, meta_params, task, state=None):
  state = {} if state is None else state
  f = lambda p: learner.outer_loss(p, state, task, jax.random.key(0))[0]
  return jax.value_and_grad(f)(meta_params)


def test_context_models_hold_a_zero_context_beside_the_network():
  params, _ = context_mlp(num_context=4).init(jax.random.key(0))
  np.testing.assert_array_equal(params["context"], np.zeros(4, np.float32))
  assert params["Dense_0"]["kernel"].shape == (1 + 4, 6) and "head" in params
  meta_params, _ = cavia.cavia(context_mlp(), losses.mse).init(jax.random.key(0))
  assert "context" not in meta_params and "head" in meta_params


@pytest.mark.parametrize("first_order", [False, True])
def test_one_step_meta_gradient_matches_closed_form(first_order):
  """One SGD step on c from 0: c = -alpha * 2/S * sum(x W_x - y) * W_c."""
  learner = cavia.cavia(linear_context_model(), losses.mse, inner_tx=optax.sgd(ALPHA),
                        first_order=first_order)
  meta_params, _ = learner.init(jax.random.key(1))
  xs, ys, xq, yq = task = closed_forms.linear_task(jax.random.key(2))

  def explicit(params, first_order):
    w_x, w_c = params["w"][:3], params["w"][3:]
    grad_c = 2.0 / xs.shape[0] * jnp.sum(xs @ w_x - ys) * w_c[:, 0]
    if first_order:
      grad_c = jax.lax.stop_gradient(grad_c)
    c = -ALPHA * grad_c
    return jnp.mean((xq @ w_x + (c @ w_c)[None, :] - yq) ** 2), c

  adapted, _ = learner.adapt(meta_params, {}, task.support, jax.random.key(3))
  np.testing.assert_allclose(adapted["context"], explicit(meta_params, False)[1],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(adapted["w"], meta_params["w"])
  loss, grads = outer_grad(learner, meta_params, task)
  want_loss, want = jax.value_and_grad(lambda p: explicit(p, first_order)[0])(meta_params)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  np.testing.assert_allclose(grads["w"], want["w"], rtol=1e-5, atol=1e-6)
  # The second-order term matters here, so this test can tell the two apart.
  other = jax.grad(lambda p: explicit(p, not first_order)[0])(meta_params)
  assert np.abs(np.asarray(other["w"] - want["w"])).max() > 1e-3


def support_loss(model, params, state, support):
  return losses.mse(model.apply(params, state, support.x, train=True)[0], support.y)[0]


def test_every_task_starts_from_a_zero_context():
  model = context_mlp()
  learner = cavia.cavia(model, losses.mse, inner_tx=optax.sgd(ALPHA), inner_steps=1)
  meta_params, state = learner.init(jax.random.key(0))
  for k in range(2):
    support = jax.tree.map(lambda x: x[0], sinusoid_tasks(jax.random.key(k), 1)).support
    adapted, _ = learner.adapt(meta_params, state, support, jax.random.key(3))
    zero = {**meta_params, "context": jnp.zeros(3)}
    grad = jax.grad(support_loss, argnums=1)(model, zero, state, support)
    np.testing.assert_allclose(adapted["context"], -ALPHA * grad["context"], rtol=1e-5)
    for name in meta_params:
      jax.tree.map(np.testing.assert_array_equal, adapted[name], meta_params[name])


def test_non_context_model_is_rejected_by_name():
  model = models.build(ml_collections.ConfigDict(dict(name="mlp", hidden=(4,),
                                                      num_outputs=1)), (1, 1))
  with pytest.raises(ValueError, match="context_mlp"):
    cavia.cavia(model, losses.mse).init(jax.random.key(0))


def test_context_conv4_is_identity_film_at_zero_context():
  """At c = 0 every FiLM layer is the identity: the output is that of plain blocks."""
  fields = dict(num_classes=3, filters=4, num_context=5)
  film = functional.from_linen(context.ContextConv4(**fields), (1, 16, 16, 1),
                               norm="transductive")
  plain = functional.from_linen(context.ContextConv4(**fields, film_blocks=()),
                                (1, 16, 16, 1), norm="transductive")
  params, state = film.init(jax.random.key(0))
  assert set(params["ConvBlock_2"]) == {"Conv_0", "BatchNorm_0", "film"}
  plain_params = dict(params)
  plain_params["ConvBlock_2"] = {k: v for k, v in params["ConvBlock_2"].items()
                                 if k != "film"}
  x = jax.random.normal(jax.random.key(1), (6, 16, 16, 1))
  want, _ = plain.apply(plain_params, state, x, train=True)
  got, _ = film.apply(params, state, x, train=True)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  moved = {**params, "context": jnp.ones(5)}
  assert not np.allclose(film.apply(moved, state, x, train=True)[0], want, atol=1e-3)


def _jitter(params, scale=0.1):
  """Moves params off exact ReLU kinks (zero biases) before finite differences."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(99), len(leaves))
  return treedef.unflatten([p + scale * jax.random.normal(k, p.shape, p.dtype)
                            for p, k in zip(leaves, keys, strict=True)])


def test_outer_gradient_matches_finite_differences(x64):
  del x64
  learner = cavia.cavia(context_mlp(), losses.mse, inner_tx=optax.sgd(0.1), inner_steps=2)
  meta_params, state = learner.init(jax.random.key(0))
  meta_params = _jitter(closed_forms.to_f64(meta_params))
  tasks = closed_forms.to_f64(sinusoid_tasks(jax.random.key(1), 2))
  f = jax.jit(lambda p: base.batched_outer_loss(learner, p, state, tasks, jax.random.key(2))[0])
  test_util.check_grads(f, (meta_params,), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_name", ["context_mlp", "context_conv4"])
def test_meta_step_runs_under_jit(model_name):
  if model_name == "context_mlp":
    model, tasks = context_mlp(), sinusoid_tasks(jax.random.key(1), 3)
  else:
    model = models.build(ml_collections.ConfigDict(dict(
        name=model_name, num_classes=2, filters=2, num_context=3, norm="transductive")),
        (1, 16, 16, 1))
    ks = jax.random.split(jax.random.key(1), 2)
    labels = jnp.tile(jnp.arange(2, dtype=jnp.int32), (3, 2))
    tasks = types.TaskBatch(jax.random.normal(ks[0], (3, 4, 16, 16, 1)), labels,
                            jax.random.normal(ks[1], (3, 4, 16, 16, 1)), labels)
  loss_fn = losses.mse if model_name == "context_mlp" else losses.cross_entropy
  learner = meta.get("cavia")(model, loss_fn)
  tx = optax.sgd(1e-2)
  train_state = base.init_train_state(learner, tx, jax.random.key(0))
  step = jax.jit(lambda s, t, k: base.meta_step(learner, tx, s, t, k))
  new_state, metrics = step(train_state, tasks, jax.random.key(2))
  assert bool(metrics["finite"]) and int(new_state.step) == 1
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new_state.params,
                         train_state.params)
  assert all(jax.tree.leaves(changed))


def test_sinusoid_config_fits_the_sinusoid_experiment():
  """What experiments/sinusoid/main.py does with a config, minus the training loop."""
  config = sinusoid_cavia.get_config("smoke")
  config_check.check_fields(config, sinusoid_maml.get_config(),
                            free=("model", "inner_optimizer", "outer_optimizer"))
  model = models.build(config.model, (1, 1))
  inner_tx = optim.build(config.inner_optimizer, "config.inner_optimizer")
  learner = meta.get(config.method)(model, losses.mse, inner_tx=inner_tx,
                                    inner_steps=config.inner_steps)
  params, state = learner.init(jax.random.key(0))
  support = jax.tree.map(lambda x: x[0], sinusoid_tasks(jax.random.key(1), 1)).support
  adapted, adapted_state = learner.adapt(params, state, support, jax.random.key(2))
  out, _ = model.apply(adapted, adapted_state, support.x, train=False)  # As plot.py does.
  assert out.shape == (5, 1)
  with pytest.raises(ValueError, match="fomaml"):
    sinusoid_cavia.get_config("fomaml")
