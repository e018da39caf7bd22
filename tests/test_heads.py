"""ProtoNets, R2-D2 and MetaOptNet-SVM heads against closed forms and finite differences."""

import closed_forms  # tests/closed_forms.py
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import scipy.optimize
from jax import test_util

from metalm import models, types
from metalm.meta import base, protonet, ridge_head, svm_head
from metalm.models import functional

pytestmark = pytest.mark.usefixtures("strict_promotion")
N, K, Q, DIN = 3, 2, 5, 4


def tanh_model(dim_in: int, dim_out: int) -> functional.ModelFns:
  """Smooth embedding tanh(x W + b), so finite differences are well defined."""

  def init(key):
    w_key, b_key = jax.random.split(key)
    return {"w": jax.random.normal(w_key, (dim_in, dim_out)) / np.sqrt(dim_in),
            "b": 0.1 * jax.random.normal(b_key, (dim_out,))}, {}

  def apply(params, state, x, *, train, key=None):
    del train, key
    return jnp.tanh(x @ params["w"] + params["b"][None, :]), state

  return functional.ModelFns(init, apply)


def identity_model() -> functional.ModelFns:
  """Embeddings are the inputs (no parameters)."""
  return functional.ModelFns(lambda key: ({}, {}),
                             lambda params, state, x, *, train, key=None: (x, state))


def few_shot_task(seed, *, num_ways=N, shots=K, queries=Q, dim=DIN,
                  dtype=np.float32) -> types.TaskBatch:
  """Gaussian classes around random means; support labels shuffled (not grouped)."""
  rng = np.random.default_rng(seed)
  means_CxD = 2.0 * rng.normal(size=(num_ways, dim))
  support_y = rng.permutation(np.tile(np.arange(num_ways), shots))
  query_y = rng.integers(0, num_ways, queries)
  support_x = means_CxD[support_y] + rng.normal(size=(support_y.size, dim))
  query_x = means_CxD[query_y] + rng.normal(size=(queries, dim))
  # Labels as wide as the floats: jnp.argmax returns int64 under x64.
  int_dtype = np.int64 if np.dtype(dtype).itemsize == 8 else np.int32
  return types.TaskBatch(support_x.astype(dtype), support_y.astype(int_dtype),
                         query_x.astype(dtype), query_y.astype(int_dtype))


def np_cross_entropy(logits, labels):
  logits = np.asarray(logits, np.float64)
  log_z = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
  return np.mean(log_z - logits[np.arange(len(labels)), labels])


def class_means(emb, labels, num_ways):
  emb, labels = np.asarray(emb, np.float64), np.asarray(labels)
  return np.stack([emb[labels == c].mean(0) for c in range(num_ways)])


def jitted(learner: base.MetaLearner) -> base.MetaLearner:
  """The learner with each function jitted (eager op-by-op dispatch is slow on CPU)."""
  return base.MetaLearner(*(jax.jit(fn) for fn in learner))


def jit_apply(model: functional.ModelFns):
  return jax.jit(model.apply, static_argnames="train")


# ProtoNets.


def test_protonet_logits_are_negative_squared_distances_to_class_means():
  model = tanh_model(DIN, 6)
  learner = jitted(protonet.protonet(model, num_ways=N))
  params, state = learner.init(jax.random.key(0))
  task = few_shot_task(1)
  task_params, _ = learner.adapt(params, state, task.support, jax.random.key(2))
  apply = jit_apply(model)
  emb_s = np.asarray(apply(params, state, task.support_x, train=True)[0], np.float64)
  emb_q = np.asarray(apply(params, state, task.query_x, train=False)[0], np.float64)
  protos = class_means(emb_s, task.support_y, N)
  np.testing.assert_allclose(task_params["prototypes"], protos, rtol=1e-5, atol=1e-6)
  logits = -((emb_q[:, None, :] - protos[None, :, :]) ** 2).sum(-1)
  np.testing.assert_allclose(
      jax.jit(protonet.squared_distances)(jnp.asarray(emb_q, jnp.float32),
                                          jnp.asarray(protos, jnp.float32)),
      -logits, rtol=1e-5, atol=1e-5)
  loss, aux = learner.outer_loss(params, state, task, jax.random.key(3))
  np.testing.assert_allclose(loss, np_cross_entropy(logits, task.query_y), rtol=1e-5)
  want_acc = np.mean(logits.argmax(1) == np.asarray(task.query_y))
  np.testing.assert_allclose(aux.metrics["accuracy"], want_acc)


@pytest.mark.parametrize("norm", ["transductive", "support"])
def test_protonet_embeds_the_query_under_the_batch_norm_mode(norm):
  model = models.build(
      ml_collections.ConfigDict(dict(name="conv4", num_classes=0, filters=2, norm=norm)),
      (1, 16, 16, 1))
  learner = jitted(protonet.protonet(model, num_ways=2))
  params, state = learner.init(jax.random.key(0))
  rng = np.random.default_rng(1)
  support_x = rng.normal(size=(4, 16, 16, 1)).astype(np.float32)
  query_x = rng.normal(size=(2, 16, 16, 1)).astype(np.float32)
  query_x[1] += 3.0  # Unlike statistics, so transductive BN couples the two queries.
  task = types.TaskBatch(support_x, np.array([0, 1, 0, 1]), query_x, np.array([0, 1]))
  loss_fn = lambda t: learner.outer_loss(params, state, t, jax.random.key(2))[0]

  apply = jit_apply(model)
  emb_s, support_state = apply(params, state, support_x, train=True)
  if norm == "support":
    emb_q, _ = apply(params, support_state, query_x, train=False)
  else:
    emb_q, _ = apply(params, state, query_x, train=True)
  protos = class_means(emb_s, task.support_y, 2)
  logits = -((np.asarray(emb_q, np.float64)[:, None] - protos[None]) ** 2).sum(-1)
  np.testing.assert_allclose(loss_fn(task), np_cross_entropy(logits, task.query_y),
                             rtol=1e-4)

  # Support statistics: a query's loss does not depend on the other queries.
  alone = [loss_fn(task._replace(query_x=query_x[[i, i]], query_y=task.query_y[[i, i]]))
           for i in range(2)]
  gap = abs(float(loss_fn(task)) - float(np.mean(alone)))
  if norm == "support":
    assert gap < 1e-5
  else:
    assert gap > 1e-3


# R2-D2.


@pytest.mark.parametrize("dim", [8, 4])  # S = 6 <= D (Woodbury) and S = 6 > D (primal).
def test_ridge_weights_equal_the_primal_ridge_solution(x64, dim):
  del x64
  x = np.random.default_rng(0).normal(size=(6, dim))
  y = np.eye(N)[np.arange(6) % N]
  for lam in (0.1, 2.5):
    want = np.linalg.solve(x.T @ x + lam * np.eye(dim), x.T @ y)
    got = ridge_head.ridge_weights(jnp.asarray(x), jnp.asarray(y), jnp.asarray(lam))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_r2d2_adapt_and_logits_match_a_direct_solve(x64):
  del x64
  model = tanh_model(DIN, 7)
  learner = ridge_head.r2d2(model, num_ways=N, init_lambda=0.7, init_scale=3.0,
                            init_bias=0.5)
  meta_params, state = closed_forms.to_f64(jax.jit(learner.init)(jax.random.key(0)))
  task = few_shot_task(1, dtype=np.float64)
  task_params, _ = jax.jit(learner.adapt)(meta_params, state, task.support, jax.random.key(2))
  apply = jit_apply(model)
  x = np.asarray(apply(meta_params["params"], state, task.support_x, train=True)[0])
  y = np.eye(N)[np.asarray(task.support_y)]
  lam = float(jnp.exp(meta_params["head"]["log_lambda"]))  # 0.7 up to float32 rounding.
  w = np.linalg.solve(x.T @ x + lam * np.eye(7), x.T @ y)
  np.testing.assert_allclose(task_params["weights"], w, rtol=1e-10, atol=1e-12)

  xq = np.asarray(apply(meta_params["params"], state, task.query_x, train=False)[0])
  loss_fn = lambda p: learner.outer_loss(p, state, task, jax.random.key(3))
  (loss, aux), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(meta_params)
  logits = 3.0 * xq @ w + 0.5
  np.testing.assert_allclose(loss, np_cross_entropy(logits, task.query_y), rtol=1e-10)
  np.testing.assert_allclose(aux.metrics["ridge_lambda"], 0.7, rtol=1e-6)
  # A scalar bias shifts every logit equally: softmax cross-entropy ignores it.
  assert abs(float(grads["head"]["bias"])) < 1e-12
  assert abs(float(grads["head"]["log_lambda"])) > 1e-6


# MetaOptNet-SVM.


solve_dual = jax.jit(svm_head.crammer_singer_dual, static_argnames=("c", "ridge", "steps"))
duality_gap = jax.jit(svm_head.duality_gap)


def svm_problem(seed, num_support=9, dim=5, num_ways=N):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(num_support, dim))
  y = np.eye(num_ways)[np.arange(num_support) % num_ways]
  return x, y


def slsqp_dual(h, y, c):
  """The dual QP by scipy's SLSQP, independent of the ADMM solver."""
  s, n = y.shape
  f = lambda v: 0.5 * np.sum(v.reshape(s, n) * (h @ v.reshape(s, n))) - v @ y.ravel()
  grad = lambda v: (h @ v.reshape(s, n) - y).ravel()
  constraints = [
      {"type": "eq", "fun": lambda v: v.reshape(s, n).sum(1),
       "jac": lambda v: np.kron(np.eye(s), np.ones((1, n)))},
      {"type": "ineq", "fun": lambda v: c * y.ravel() - v, "jac": lambda v: -np.eye(s * n)},
  ]
  res = scipy.optimize.minimize(f, np.zeros(s * n), jac=grad, constraints=constraints,
                                method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000})
  return res.x.reshape(s, n)


@pytest.mark.parametrize("ridge", [0.0, 1.0])
def test_svm_dual_solution_is_feasible_and_satisfies_kkt(x64, ridge):
  del x64
  c = 0.1
  x, y = svm_problem(0)
  h = x @ x.T + ridge * np.eye(len(x))
  a = np.asarray(solve_dual(
      jnp.asarray(x @ x.T), jnp.asarray(y), c=c, ridge=ridge, steps=500))
  # Feasibility.
  np.testing.assert_allclose(a.sum(1), 0, atol=1e-12)
  assert np.all(a <= c * y + 1e-12)
  # KKT: per row, coordinates off their upper bound share the largest gradient entry
  # (the row's multiplier); those at the bound may have smaller ones.
  grad = h @ a - y
  free = c * y - a > 1e-9
  row_max = grad.max(1, keepdims=True)
  np.testing.assert_allclose(np.where(free, grad - row_max, 0), 0, atol=1e-9)
  assert free.sum() > len(a)  # Not a vacuous check: some rows have several free entries.
  # Zero duality gap, and the projected-gradient fixed point.
  gap = duality_gap(jnp.asarray(a), jnp.asarray(h), jnp.asarray(y), c)
  assert 0 <= float(gap) < 1e-10
  step = svm_head.project_dual(jnp.asarray(a - 0.3 * grad), jnp.asarray(y), c)
  np.testing.assert_allclose(step, a, atol=1e-10)
  # The optimum of an independent solver.
  ref = slsqp_dual(h, y, c)
  f = lambda v: float(svm_head.dual_objective(jnp.asarray(v), jnp.asarray(h), jnp.asarray(y)))
  assert f(a) <= f(ref) + 1e-10
  np.testing.assert_allclose(f(a), f(ref), rtol=1e-7)
  np.testing.assert_allclose(a, ref, atol=1e-5)


def test_svm_dual_converges_on_an_ill_conditioned_kernel(x64):
  """Big, clustered, rank-deficient embeddings (S > D): cond(H) ~ 1e4."""
  del x64
  rng = np.random.default_rng(1)
  labels = np.arange(25) % 5
  x = 8.0 * (rng.normal(size=(5, 16))[labels] + 0.8 * rng.normal(size=(25, 16)))
  gram, y = jnp.asarray(x @ x.T), jnp.asarray(np.eye(5)[labels])
  h = gram + jnp.eye(25)
  assert float(jnp.linalg.cond(h)) > 1e3
  solve = lambda steps: solve_dual(gram, y, c=0.1, ridge=1.0, steps=steps)
  gaps = [float(duality_gap(solve(steps), h, y, 0.1)) for steps in (10, 100, 1000)]
  assert gaps[0] > gaps[1] > gaps[2] >= 0
  assert gaps[2] < 1e-9
  # The default number of steps recovers the SVM's weights.
  w_ref = x.T @ np.asarray(solve(1000))
  w = x.T @ np.asarray(solve(100))
  assert np.linalg.norm(w - w_ref) < 1e-4 * np.linalg.norm(w_ref)


def test_project_simplex_matches_bruteforce():
  v = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
  got = np.asarray(svm_head.project_simplex(jnp.asarray(v), 0.3))
  np.testing.assert_allclose(got.sum(1), 0.3, rtol=1e-5)
  assert np.all(got >= 0)
  for row_v, row_p in zip(v, got, strict=True):
    res = scipy.optimize.minimize(
        lambda u, r=row_v: 0.5 * np.sum((u - r) ** 2), np.full(4, 0.075), method="SLSQP",
        bounds=[(0, None)] * 4, constraints=[{"type": "eq", "fun": lambda u: u.sum() - 0.3}],
        options={"ftol": 1e-12})
    np.testing.assert_allclose(row_p, res.x, atol=1e-5)


def test_svm_separates_well_separated_support_sets():
  num_ways, shots, dim = 4, 3, 6
  rng = np.random.default_rng(0)
  means_CxD = 4.0 * np.eye(num_ways, dim, dtype=np.float32)
  support_y = np.tile(np.arange(num_ways), shots)
  query_y = rng.integers(0, num_ways, 8)
  noise = lambda n: 0.2 * rng.normal(size=(n, dim)).astype(np.float32)
  task = types.TaskBatch(means_CxD[support_y] + noise(support_y.size), support_y,
                         means_CxD[query_y] + noise(8), query_y)
  learner = jitted(svm_head.metaoptnet_svm(identity_model(), num_ways=num_ways))
  meta_params, state = learner.init(jax.random.key(0))
  task_params, _ = learner.adapt(meta_params, state, task.support, jax.random.key(3))
  support_pred = jnp.argmax(task.support_x @ task_params["weights"], -1)
  np.testing.assert_array_equal(support_pred, task.support_y)
  # Support vectors exist for every class, and the default solver has converged.
  assert np.all(np.abs(np.asarray(task_params["dual"])).sum(0) > 0)
  _, aux = learner.outer_loss(meta_params, state, task, jax.random.key(4))
  assert float(aux.metrics["accuracy"]) == 1.0
  assert float(aux.metrics["svm_gap"]) < 1e-3


# Finite differences and the jitted meta step, for every head.

HEADS = {
    "protonet": lambda model: protonet.protonet(model, num_ways=N),
    "r2d2": lambda model: ridge_head.r2d2(model, num_ways=N, init_scale=2.0),
    "svm": lambda model: metaoptnet_svm_small(model),
}


def metaoptnet_svm_small(model):
  # C large enough for the tiny tanh embeddings to have free (non-bound) duals.
  return svm_head.metaoptnet_svm(model, num_ways=N, C=1.0, solver_steps=20,
                                 kernel_ridge=0.5, init_scale=2.0)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_outer_gradient_matches_finite_differences(x64, head):
  del x64
  learner = HEADS[head](tanh_model(DIN, 5))
  meta_params, state = closed_forms.to_f64(jax.jit(learner.init)(jax.random.key(0)))
  task = few_shot_task(1, dtype=np.float64)
  f = jax.jit(lambda p: learner.outer_loss(p, state, task, jax.random.key(2))[0])
  # eps=1e-6: small enough not to cross a kink of the SVM's projections.
  test_util.check_grads(f, (meta_params,), order=1, modes=["rev"], atol=1e-6, rtol=1e-6,
                        eps=1e-6)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_meta_step_jits_and_updates(head):
  model = models.build(
      ml_collections.ConfigDict(dict(name="mlp", hidden=(4,), num_outputs=8)), (1, DIN))
  learner = HEADS[head](model)
  tx = optax.sgd(0.1)
  train_state = jax.jit(lambda k: base.init_train_state(learner, tx, k))(jax.random.key(0))
  tasks = jax.tree.map(lambda *xs: np.stack(xs), *[few_shot_task(i) for i in range(3)])
  step = jax.jit(lambda s, t, k: base.meta_step(learner, tx, s, t, k))
  new_state, metrics = step(train_state, tasks, jax.random.key(2))
  assert bool(metrics["finite"]) and np.isfinite(float(metrics["loss"]))
  assert 0 <= float(metrics["accuracy"]) <= 1
  assert int(new_state.step) == 1
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new_state.params,
                         train_state.params)
  assert any(jax.tree.leaves(changed))
