"""Property-based tests of bad input: metalm's own error, never a crash deep inside JAX.

Each test draws values (valid and invalid) for one entry point. Valid values must give
a correct result; invalid ones a ValueError raised by metalm itself (its last frame is
in ``metalm/``) that names the offending field or array.
"""

import math
import os
import traceback

import jax
import ml_collections
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.sinusoid.configs import maml as maml_config
from metalm import losses, meta, models
from metalm.data import episodic, sinusoid
from metalm.eval import adapt
from metalm.meta import base
from metalm.train import loop, optim

METALM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "metalm")
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=20, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

anything = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
    st.lists(st.integers(-3, 3), max_size=3).map(tuple))


def assert_own_error(error: BaseException, *names: str) -> None:
  """The error is a ValueError raised in metalm's code that names ``names``."""
  assert isinstance(error, ValueError), repr(error)
  last = traceback.extract_tb(error.__traceback__)[-1]
  assert last.filename.startswith(METALM), f"raised in {last.filename}: {error}"
  for name in names:
    assert name in str(error), f"{name!r} not in {error}"


def raises_own_error(fn, *names):
  with pytest.raises(ValueError) as info:
    fn()
  assert_own_error(info.value, *names)


def is_count(value, minimum):
  return (isinstance(value, int) and not isinstance(value, bool) and value >= minimum)


# The training loop's fields ----------------------------------------------------------

LOOP_FIELDS = {"seed": 0, "num_steps": 0, "log_every": 1, "checkpoint_every": 1,
               "max_checkpoints": 1, "meta_batch_size": 1}


@FAST
@given(field=st.sampled_from(sorted(LOOP_FIELDS)), value=anything)
def test_loop_fields_are_checked_before_anything_runs(tmp_path_factory, field, value):
  # Built from a dict: a ConfigDict refuses type changes by itself (as on the command
  # line); a config file or a program can still pass any value.
  config = ml_collections.ConfigDict({**maml_config.get_config("smoke").to_dict(),
                                      field: value})
  if is_count(value, LOOP_FIELDS[field]):
    return  # Valid: covered by the loop tests.
  workdir = tmp_path_factory.mktemp("run")
  model = models.build(config.model, (1, 1))
  raises_own_error(lambda: loop.train(
      config, str(workdir), learner=meta.get("maml")(model, losses.mse,
                                                      inner_tx=optax.sgd(0.01)),
      outer_tx=optax.adam(1e-3), sampler=sinusoid.sampler(**config.data)),
      f"config.{field}")
  assert not os.listdir(workdir)  # Nothing was written.


# Optimizers ----------------------------------------------------------------------------

@FAST
@given(name=st.sampled_from(sorted(optim.OPTIMIZERS)), learning_rate=anything,
       b1=st.one_of(st.just(None), anything))
def test_optimizer_fields(name, learning_rate, b1):
  fields = dict(name=name, learning_rate=learning_rate)
  if b1 is not None and name in ("adam", "adamw", "lamb"):
    fields["b1"] = b1
  config = ml_collections.ConfigDict(fields)
  lr_ok = (isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool)
           and math.isfinite(learning_rate) and 0 < learning_rate < 3.4e38)
  b1_ok = "b1" not in fields or (
      isinstance(b1, (int, float)) and not isinstance(b1, bool) and math.isfinite(b1)
      and 0 <= b1 < 1)
  if lr_ok and b1_ok:
    tx = optim.build(config, "config.outer_optimizer")
    params = {"w": np.ones(3, np.float32)}
    updates, _ = tx.update(params, tx.init(params), params)
    if learning_rate <= 1e6:  # Larger rates may overflow float32 updates, as they would.
      assert np.isfinite(updates["w"]).all()
  else:
    bad = "learning_rate" if not lr_ok else "b1"
    raises_own_error(lambda: optim.build(config, "config.outer_optimizer"),
                     f"config.outer_optimizer.{bad}")


@FAST
@given(config=st.one_of(anything, st.just({"learning_rate": 0.1})))
def test_optimizer_must_be_a_named_group(config):
  raises_own_error(lambda: optim.build(config, "config.inner_optimizer"),
                   "config.inner_optimizer")


# Models ------------------------------------------------------------------------------

MODEL_FIELDS = {"mlp": ("hidden", "num_outputs"), "conv4": ("filters", "num_classes")}


@SLOW
@given(name=st.sampled_from(sorted(MODEL_FIELDS)), data=st.data(), value=anything)
def test_model_fields(name, data, value):
  field = data.draw(st.sampled_from(MODEL_FIELDS[name]))
  config = ml_collections.ConfigDict({
      **{"mlp": dict(name="mlp", hidden=(4,), num_outputs=2, norm="none"),
         "conv4": dict(name="conv4", filters=4, num_classes=2, norm="transductive")}[name],
      field: value})
  minimum = 0 if field == "num_classes" else 1
  valid = (is_count(value, minimum) if field != "hidden" else
           isinstance(value, tuple) and all(is_count(v, 1) for v in value))
  shape = (1, 3) if name == "mlp" else (1, 16, 16, 1)
  if valid:
    fns = models.build(config, shape)
    params, state = fns.init(jax.random.key(0))
    out, _ = fns.apply(params, state, np.ones(shape, np.float32), train=False, key=None)
    assert np.isfinite(np.asarray(out)).all()
  else:
    raises_own_error(lambda: models.build(config, shape), f"config.model.{field}")


def test_image_too_small_for_conv4():
  config = ml_collections.ConfigDict(
      dict(name="conv4", filters=4, num_classes=2, norm="transductive"))
  raises_own_error(lambda: models.build(config, (1, 8, 8, 1)), "at least 16x16")


@FAST
@given(inner_steps=anything)
def test_inner_steps(inner_steps):
  model = models.build(ml_collections.ConfigDict(
      dict(name="mlp", hidden=(4,), num_outputs=1, norm="none")), (1, 1))
  config = ml_collections.ConfigDict(dict(
      name="maml", inner_steps=inner_steps,
      inner_optimizer=dict(name="sgd", learning_rate=0.1)))
  if is_count(inner_steps, 0):
    assert meta.build(config, model, loss_fn=losses.mse) is not None
  else:
    raises_own_error(lambda: meta.build(config, model, loss_fn=losses.mse),
                     "config.method.inner_steps")


# Episodes ----------------------------------------------------------------------------

@FAST
@given(counts=st.lists(st.integers(0, 6), min_size=0, max_size=7),
       ways=st.one_of(st.integers(-2, 8), st.floats(0.5, 3.5)),
       shots=st.integers(-1, 4), queries=st.integers(-1, 3), seed=st.integers(-2, 5))
def test_episodes_are_right_or_refused(counts, ways, shots, queries, seed):
  """Every episode holds N classes, K+Q distinct examples of each, labels 0..N-1."""
  # Example e of class c holds the value 100 * c + e, so its origin can be checked.
  images = [np.array([[100 * c + e] for e in range(n)], np.float32)
            for c, n in enumerate(counts)]
  valid = (counts and is_count(ways, 1) and shots >= 1 and queries >= 0 and seed >= 0
           and sum(n >= shots + queries for n in counts) >= ways
           and min(counts) >= shots + queries)
  make = lambda: episodic.sampler(images, ways=ways, shots=shots, queries=queries,
                                  seed=seed)
  if not valid:
    with pytest.raises(ValueError) as info:
      make()
    assert_own_error(info.value)
    return
  tasks = make().batch(0, 2)
  for t in range(2):
    sx, sy = tasks.support.x[t, :, 0], tasks.support.y[t]
    qx, qy = tasks.query.x[t, :, 0], tasks.query.y[t]
    assert sorted(set(sy.tolist())) == list(range(ways))
    everything = np.concatenate([sx, qx])
    assert len(set(everything.tolist())) == len(everything)  # No example twice.
    for label in range(ways):
      origin = {int(v) // 100 for v in everything[np.concatenate([sy, qy]) == label]}
      assert len(origin) == 1  # Every example of a label comes from one class.


# User arrays in adapt_and_predict ----------------------------------------------------

@pytest.fixture(scope="module")
def trained():
  config = ml_collections.ConfigDict(dict(
      method=dict(name="protonet"),
      model=dict(name="mlp", hidden=(8,), num_outputs=4, norm="none"),
      eval=dict(inner_steps=0)))
  model = models.build(config.model, (1, 3))
  learner = meta.build(config.method, model, loss_fn=losses.cross_entropy, num_ways=2)
  state = base.init_train_state(learner, optax.sgd(0.1), jax.random.key(0))
  return adapt.Trained(config, model, state.params, state.model_state, (3,))


arrays = st.one_of(
    st.integers(0, 4).flatmap(lambda n: st.sampled_from(
        [np.zeros((n, 3)), np.zeros((n, 2)), np.zeros((n,)), np.zeros((n, 3, 1))])),
    st.just(np.array([[np.nan, 0, 0]])), st.just(np.array([[0, np.inf, 0]])),
    st.just(np.array([["a", "b", "c"]])), st.just([[1, 2, 3]]), st.just(5.0))


@SLOW
@given(support_x=arrays, support_y=st.one_of(
    st.lists(st.sampled_from(["cat", "dog"]), max_size=4).map(np.array),
    st.just(np.zeros((2, 2)))), query_x=arrays)
def test_adapt_and_predict_arrays(trained, support_x, support_y, query_x):
  sx, qx = np.asarray(support_x), np.asarray(query_x)
  valid = (sx.dtype.kind in "biuf" and qx.dtype.kind in "biuf"
           and sx.ndim == 2 and sx.shape[1:] == (3,) and qx.ndim == 2
           and qx.shape[1:] == (3,) and qx.shape[0] > 0
           and np.isfinite(sx).all() and np.isfinite(qx).all()
           and np.asarray(support_y).ndim == 1 and len(support_y) == sx.shape[0] > 0)
  if valid:
    labels, probabilities = adapt.adapt_and_predict(trained, sx, support_y, qx)
    classes = np.unique(support_y)
    assert probabilities.shape == (qx.shape[0], len(classes))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    assert set(labels.tolist()) <= set(classes.tolist())
  else:
    with pytest.raises(ValueError) as info:
      adapt.adapt_and_predict(trained, sx, support_y, qx)
    assert_own_error(info.value)
    assert any(name in str(info.value) for name in ("support_x", "support_y", "query_x"))
