"""Models through the functional boundary: shapes, sizes, BatchNorm modes."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from metalm import models
from metalm.models import functional

pytestmark = pytest.mark.usefixtures("strict_promotion")


def build(**fields):
  shape = fields.pop("shape")
  return models.build(ml_collections.ConfigDict(fields), shape)


def num_params(params):
  return sum(x.size for x in jax.tree.leaves(params))


def test_mlp_is_the_finn_regressor():
  model = build(name="mlp", hidden=(40, 40), num_outputs=1, shape=(1, 1))
  params, state = model.init(jax.random.key(0))
  assert num_params(params) == (1 * 40 + 40) + (40 * 40 + 40) + (40 + 1)
  out, _ = model.apply(params, state, jnp.ones((7, 1)), train=False)
  assert out.shape == (7, 1) and state == {}


@pytest.mark.parametrize("size,filters,features", [(28, 64, 64), (84, 32, 800)])
def test_conv4_sizes(size, filters, features):
  channels = 1 if size == 28 else 3
  model = build(name="conv4", num_classes=5, filters=filters, norm="transductive",
                shape=(1, size, size, channels))
  params, state = model.init(jax.random.key(0))
  convs = 9 * channels * filters + filters + 3 * (9 * filters * filters + filters)
  batch_norm = 4 * 2 * filters
  assert num_params(params) == convs + batch_norm + features * 5 + 5
  out, _ = model.apply(params, state, jnp.ones((3, size, size, channels)), train=True)
  assert out.shape == (3, 5)


def test_resnet12_matches_metaoptnet():
  model = build(name="resnet12", num_classes=0, norm="transductive", shape=(1, 84, 84, 3))
  params, state = jax.eval_shape(model.init, jax.random.key(0))
  # 12 conv-BN layers in four blocks of 64, 160, 320, 640 channels, plus shortcuts.
  expected, cin = 0, 3
  for c in (64, 160, 320, 640):
    expected += 9 * cin * c + 2 * 9 * c * c + cin * c + 4 * 2 * c
    cin = c
  assert num_params(params) == expected
  out, _ = jax.eval_shape(
      lambda p, s: model.apply(p, s, jnp.ones((2, 84, 84, 3)), train=True,
                               key=jax.random.key(1)), params, state)
  assert out.shape == (2, 5 * 5 * 640)  # Flattened features, as MetaOptNet.


def test_resnet12_dropblock_is_random_only_in_training():
  model = build(name="resnet12", num_classes=4, channels=(4, 4, 4, 4), norm="transductive",
                shape=(1, 32, 32, 3))
  params, state = model.init(jax.random.key(0))
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  a, _ = model.apply(params, state, x, train=True, key=jax.random.key(2))
  b, _ = model.apply(params, state, x, train=True, key=jax.random.key(3))
  assert not np.allclose(a, b)
  _, stats = model.apply(params, state, x, train=True, key=jax.random.key(2))
  c, _ = model.apply(params, stats, x, train=False)
  d, _ = model.apply(params, stats, x, train=False)
  np.testing.assert_array_equal(c, d)


def conv(norm):
  return build(name="conv4", num_classes=3, filters=4, norm=norm, shape=(1, 16, 16, 1))


def query_outputs(model, params, state, support_x, query_x):
  return functional.predict_query(model, params, state, support_x, query_x)[0]


def test_transductive_batch_norm_lets_query_examples_see_each_other():
  model = conv("transductive")
  params, state = model.init(jax.random.key(0))
  support_x, query_x = jax.random.normal(jax.random.key(1), (2, 5, 16, 16, 1))
  changed = query_x.at[1:].multiply(3.0)
  a = query_outputs(model, params, state, support_x, query_x)
  b = query_outputs(model, params, state, support_x, changed)
  assert not np.allclose(a[0], b[0], atol=1e-4)


def test_support_batch_norm_keeps_query_examples_independent():
  model = conv("support")
  params, state = model.init(jax.random.key(0))
  support_x, query_x = jax.random.normal(jax.random.key(1), (2, 5, 16, 16, 1))
  a = query_outputs(model, params, state, support_x, query_x)
  b = query_outputs(model, params, state, support_x, query_x.at[1:].multiply(3.0))
  np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
  # One query alone gets the same output as inside its query set.
  alone = query_outputs(model, params, state, support_x, query_x[:1])
  np.testing.assert_allclose(alone[0], a[0], rtol=1e-5, atol=1e-6)
  # ... and the output does depend on the task's support set.
  c = query_outputs(model, params, state, support_x * 2.0 + 1.0, query_x)
  assert not np.allclose(a[0], c[0], atol=1e-4)


def test_bad_model_configs_name_the_problem():
  with pytest.raises(ValueError, match=r"Unknown model 'conv5'.*conv4"):
    build(name="conv5", num_classes=5, norm="support", shape=(1, 28, 28, 1))
  with pytest.raises(ValueError, match=r"\['hiden'\].*hidden"):
    build(name="mlp", hiden=(40,), num_outputs=1, shape=(1, 1))
  with pytest.raises(ValueError, match=r"norm='none' does not fit model 'conv4'"):
    build(name="conv4", num_classes=5, norm="none", shape=(1, 28, 28, 1))
  with pytest.raises(ValueError, match=r"Unknown norm mode 'batch'"):
    functional.from_linen(None, (1, 1), norm="batch")
