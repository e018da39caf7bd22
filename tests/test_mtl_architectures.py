"""Multitask architectures: shapes, the task-key layout, and the clean encode/decode split."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from metalm.mtl import architectures, base
from metalm.mtl.architectures import components, cross_stitch, trunks

pytestmark = pytest.mark.usefixtures("strict_promotion")

TASK = base.TASK_KEY
NAMES = tuple(architectures.ARCHITECTURES)
# What each architecture keeps under params["task"][name].
TASK_PARTS = {
    "hard_sharing": {"head"},
    "cross_stitch": {"head"},
    "mtan": {"attention", "head"},
    "mmoe": {"experts", "gate", "head"},
    "cgc": {"experts", "gate", "head"},
    "ple": {"experts", "gate", "head"},
}
SHARED_PARTS = {
    "hard_sharing": {"trunk"},
    "cross_stitch": {"columns", "stitch"},
    "mtan": {"trunk"},
    "mmoe": {"experts"},
    "cgc": {"experts"},
    "ple": {"experts", "level_0"},
}


class NormStage(nn.Module):
  """Dense -> BatchNorm -> ReLU: a trunk stage with state."""

  width: int

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Dense(self.width)(x)
    return nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.0)(x))


class NormHead(nn.Module):
  """BatchNorm -> Dense: a head with state."""

  width: int

  @nn.compact
  def __call__(self, x, train: bool):
    return nn.Dense(self.width)(nn.BatchNorm(use_running_average=not train, momentum=0.0)(x))


STAGES = (NormStage(8), NormStage(6))


def heads():
  # One head with BatchNorm state and one plain Linen head without a ``train`` argument.
  return {"left": NormHead(3), "right": trunks.MLP((4, 2), activate_final=False)}


def build(name, **options):
  return architectures.build(name, STAGES, heads(), (1, 5), **options)


def random_like(shapes, seed=0):
  """Random params and fresh BatchNorm state of the given shapes, drawn on the host.

  Running ``init`` compiles one random initializer per layer, seconds each on a busy
  CPU; ``init`` is traced (``eval_shape``) for the layout and run in a few tests only.
  """
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if "batch_stats" in name:
      return jnp.ones(leaf.shape) if "var" in name else jnp.zeros(leaf.shape)
    return jnp.asarray(rng.normal(0.0, 0.5, leaf.shape), leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


@functools.cache
def built(name):
  """``(model, params, state)``, made once per architecture."""
  model = build(name)
  params, state = random_like(jax.eval_shape(model.init, jax.random.key(0)))
  return model, params, state


def forward(model, params, state, x, *, train=False, key=None):
  rep, state = model.encode(params, state, x, train=train, key=key)
  return model.decode(params, state, rep, train=train, key=key)


def zeros_like(tree):
  return jax.tree.map(jnp.zeros_like, tree)


def inputs(shape=(7, 5), seed=1):
  return jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_and_param_layout(name):
  model, params, state = built(name)
  out, new_state = forward(model, params, state, inputs())
  assert model.tasks == ("left", "right")
  assert {k: v.shape for k, v in out.items()} == {"left": (7, 3), "right": (7, 2)}
  assert set(params) == SHARED_PARTS[name] | {TASK}
  assert set(params[TASK]) == set(model.tasks)
  for task in model.tasks:
    assert set(params[TASK][task]) == TASK_PARTS[name]
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  assert set(state[TASK]) == set(model.tasks)


@pytest.mark.parametrize("name", NAMES)
def test_lenet_for_multi_mnist(name):
  model = architectures.build(name, trunks.lenet_stages(), trunks.lenet_head(10),
                              (1, 28, 28, 1), tasks=("left", "right"))
  params, state = jax.eval_shape(model.init, jax.random.key(0))
  out, _ = jax.eval_shape(functools.partial(forward, model), params, state,
                          jnp.zeros((2, 28, 28, 1)))
  assert {k: v.shape for k, v in out.items()} == {"left": (2, 10), "right": (2, 10)}


def test_lenet_is_sener_and_koltun():
  variables = jax.eval_shape(trunks.LeNet().init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  sizes = [x.size for x in jax.tree.leaves(variables["params"])]
  # conv 1->10 5x5, conv 10->20 5x5, dense 320->50.
  assert sum(sizes) == (25 * 10 + 10) + (25 * 10 * 20 + 20) + (320 * 50 + 50)


@pytest.mark.parametrize("name", NAMES)
def test_decode_reads_only_task_params_and_encode_only_shared(name):
  model, params, state = built(name)
  x = inputs()
  rep, state = model.encode(params, state, x, train=False)
  out, _ = model.decode(params, state, rep, train=False)
  shared, task = base.split_params(params)
  out_no_shared, _ = model.decode(base.merge_params(zeros_like(shared), task), state, rep,
                                  train=False)
  rep_no_task, _ = model.encode(base.merge_params(shared, zeros_like(task)), state, x,
                                train=False)
  jax.tree.map(np.testing.assert_array_equal, out_no_shared, out)
  jax.tree.map(np.testing.assert_array_equal, rep_no_task, rep)


@pytest.mark.parametrize("name", NAMES)
def test_a_task_output_has_no_gradient_in_other_tasks_params(name):
  model, params, state = built(name)

  def task_sums_T(params):
    out, _ = forward(model, params, state, inputs())
    return jnp.stack([out[task].sum() for task in model.tasks])

  grads_T = jax.jit(jax.jacrev(task_sums_T))(params)
  shared_T, task_T = base.split_params(grads_T)
  for t, task in enumerate(model.tasks):
    for other in model.tasks:
      norm = sum(jnp.sum(g[t] ** 2) for g in jax.tree.leaves(task_T[other]))
      assert (norm > 0) == (other == task), (task, other)
    assert sum(jnp.sum(g[t] ** 2) for g in jax.tree.leaves(shared_T)) > 0


def test_cross_stitch_at_identity_is_independent_networks():
  model, params, state = built("cross_stitch")
  params = {**params, "stitch": {
      stage: cross_stitch.init_stitch(2, alpha.shape[-1], self_weight=1.0)
      for stage, alpha in params["stitch"].items()}}
  x = inputs()
  out, _ = forward(model, params, state, x)
  for task, head in heads().items():
    h = x
    for j, stage in enumerate(STAGES):
      name = f"stage_{j}"
      h = stage.apply({"params": params["columns"][task][name],
                       **state["columns"][task][name]}, h, train=False)
    expected = head.apply({"params": params[TASK][task]["head"],
                           **state[TASK][task]["head"]}, h,
                          **({"train": False} if isinstance(head, NormHead) else {}))
    np.testing.assert_array_equal(out[task], expected)


def test_cross_stitch_starts_near_identity():
  params, _ = jax.jit(build("cross_stitch").init)(jax.random.key(0))
  alpha_TxTxC = params["stitch"]["stage_0"]
  assert alpha_TxTxC.shape == (2, 2, 8)
  np.testing.assert_allclose(alpha_TxTxC[:, :, 0], [[0.9, 0.1], [0.1, 0.9]], rtol=1e-6)
  np.testing.assert_allclose(cross_stitch.init_stitch(3, 1, 0.8)[:, :, 0],
                             [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], rtol=1e-6)


def test_mmoe_with_one_expert_is_hard_sharing():
  shared, params, state = built("hard_sharing")
  mmoe = build("mmoe", num_experts=1)
  mmoe_params, mmoe_state = jax.eval_shape(mmoe.init, jax.random.key(0))
  add_expert_axis = functools.partial(jax.tree.map, lambda a: a[None])
  mmoe_params = {
      "experts": add_expert_axis(params["trunk"]),
      TASK: {t: {"experts": {}, "head": params[TASK][t]["head"],
                 "gate": jax.tree.map(lambda a: jnp.ones(a.shape, a.dtype),
                                      mmoe_params[TASK][t]["gate"])}
             for t in mmoe.tasks},
  }
  mmoe_state = {"experts": add_expert_axis(state["trunk"]),
                TASK: {t: {"experts": {}, "head": state[TASK][t]["head"]} for t in mmoe.tasks}}
  x = inputs()
  out, _ = forward(mmoe, mmoe_params, mmoe_state, x)
  expected, _ = forward(shared, params, state, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
               out, expected)


def test_ple_with_one_stage_has_the_cgc_layout():
  cgc = architectures.build("cgc", NormStage(4), heads(), (1, 5))
  ple = architectures.build("ple", [NormStage(4)], heads(), (1, 5))
  shapes = [jax.eval_shape(m.init, jax.random.key(0)) for m in (cgc, ple)]
  assert jax.tree.map(jnp.shape, shapes[0]) == jax.tree.map(jnp.shape, shapes[1])


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_grad(name):
  model, params, state = built(name)
  traces = []

  def loss(params, x):
    traces.append(None)
    out, _ = forward(model, params, state, x, train=True)
    return sum(jnp.mean(o**2) for o in out.values())

  value_and_grad = jax.jit(jax.value_and_grad(loss))
  for seed in range(3):
    value, grads = value_and_grad(params, inputs(seed=seed))
  assert jnp.isfinite(value) and len(traces) == 1  # Three calls, one trace.
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  assert all(jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", NAMES)
def test_batch_norm_statistics_are_state(name):
  model, params, state = built(name)

  def paths(tree):
    return [jax.tree_util.keystr(path) for path, _ in jax.tree.leaves_with_path(tree)]

  def changed(a, b):
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return any(not np.allclose(u, v) for u, v in pairs)

  assert not any("batch_stats" in path for path in paths(params))
  assert paths(state) and all("batch_stats" in path for path in paths(state))
  x = inputs()
  rep, encoded = model.encode(params, state, x, train=True)
  out, decoded = model.decode(params, encoded, rep, train=True)
  assert jax.tree.structure(decoded) == jax.tree.structure(state)
  shared_old, task_old = base.split_params(state)
  shared_new, task_new = base.split_params(decoded)
  assert changed(shared_old, shared_new) and changed(task_old, task_new)
  # Encode leaves the task statistics alone; decode leaves the shared ones.
  jax.tree.map(np.testing.assert_array_equal, encoded[TASK], state[TASK])
  jax.tree.map(np.testing.assert_array_equal, base.split_params(encoded)[0], shared_new)
  # Evaluated with the batch's own statistics, train and eval modes agree.
  evaluated, _ = forward(model, params, decoded, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), evaluated, out)


def test_build_from_config_and_errors():
  config = ml_collections.ConfigDict({"name": "mmoe", "num_experts": 3})
  model = architectures.build(config, trunks.MLP((4,)), heads(), (1, 5))
  params, _ = jax.eval_shape(model.init, jax.random.key(0))
  assert jax.tree.leaves(params["experts"])[0].shape[0] == 3
  with pytest.raises(ValueError, match="Did you mean 'mmoe'"):
    architectures.build("mmeo", trunks.MLP((4,)), heads(), (1, 5))
  with pytest.raises(ValueError, match="num_expert"):
    architectures.build("cgc", trunks.MLP((4,)), heads(), (1, 5), num_expert=2)
  with pytest.raises(ValueError, match="tasks="):
    architectures.build("hard_sharing", trunks.MLP((4,)), nn.Dense(1), (1, 5))


def test_dropout_follows_the_key():
  class Dropout(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
      return nn.Dropout(0.5, deterministic=not train)(nn.Dense(8)(x))

  model = architectures.build("cgc", Dropout(), heads(), (1, 5))
  params, state = random_like(jax.eval_shape(model.init, jax.random.key(0)))
  a, _ = forward(model, params, state, inputs(), train=True, key=jax.random.key(1))
  b, _ = forward(model, params, state, inputs(), train=True, key=jax.random.key(2))
  c, _ = forward(model, params, state, inputs(), train=True, key=jax.random.key(1))
  assert not np.allclose(a["left"], b["left"])
  jax.tree.map(np.testing.assert_array_equal, a, c)


def test_task_heads_checks_names():
  with pytest.raises(ValueError, match="differ"):
    components.task_heads(heads(), ("left",))
