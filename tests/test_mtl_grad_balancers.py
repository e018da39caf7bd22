"""Gradient-manipulation balancers against their mathematics.

Gradients are pytrees with two leaves of different shapes, ``{"b": [T, 2], "w": [T, 3, 2]}``
(D = 8), built from a ``[T, D]`` matrix ``J`` that only the references here ravel.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from metalm.mtl import (
  aligned_mtl,
  cagrad,
  fairgrad,
  graddrop,
  gradvac,
  imtl,
  mgda,
  nash_mtl,
  pcgrad,
  qp,
  upgrad,
)

pytestmark = pytest.mark.usefixtures("strict_promotion")
DIM = 8


def to_tree(j_TxD):
  j_TxD = jnp.asarray(j_TxD)
  return {"b": j_TxD[:, :2], "w": j_TxD[:, 2:].reshape(-1, 3, 2)}


def to_vec(direction):
  return np.concatenate([np.asarray(direction["b"]), np.asarray(direction["w"]).reshape(-1)])


@functools.cache
def make(factory, *args, **kwargs):
  """One balancer per configuration, so its jitted update compiles once per test session."""
  return factory(*args, **kwargs)


GRADVAC_PER_LEAF = gradvac.gradvac(params_like={"b": 0, "w": 0})
FAIR_WEIGHTS = jax.jit(fairgrad.fair_weights, static_argnums=1)
_TRACES = {}  # Traces of each balancer's jitted update, by balancer.


@functools.cache
def jitted(balancer):
  """The balancer's update, jitted once per balancer (and counting its traces)."""

  def update(grads_T, state, losses_T, key):
    _TRACES[balancer] = _TRACES.get(balancer, 0) + 1
    return balancer.update(grads_T, state, losses_T=losses_T, key=key)

  return jax.jit(update)


def run(balancer, j_TxD, *, losses_T=None, state=None, seed=0):
  """One update on the pytree of ``j_TxD``; returns the ravelled direction and the state."""
  num_tasks = j_TxD.shape[0]
  losses_T = np.linspace(1.0, 2.0, num_tasks) if losses_T is None else losses_T
  state = balancer.init(num_tasks) if state is None else state
  direction, state = jitted(balancer)(to_tree(j_TxD), state, jnp.asarray(losses_T),
                                      jax.random.key(seed))
  return to_vec(direction), state


def random_jacobian(seed, num_tasks, dim=DIM):
  return np.random.default_rng(seed).normal(size=(num_tasks, dim))


def brute_force_qp(q_TxT, c_T, simplex):
  """Exact QP minimum by enumerating supports and solving each face's KKT system."""
  num = len(c_T)
  best = (np.inf, None)
  for size in range(1 if simplex else 0, num + 1):
    for support in itertools.combinations(range(num), size):
      s = list(support)
      x = np.zeros(num)
      if simplex:
        kkt = np.block([[q_TxT[np.ix_(s, s)], -np.ones((size, 1))],
                        [np.ones((1, size)), np.zeros((1, 1))]])
        x[s] = np.linalg.lstsq(kkt, np.r_[-c_T[s], 1.0], rcond=None)[0][:size]
      elif size:
        x[s] = np.linalg.lstsq(q_TxT[np.ix_(s, s)], -c_T[s], rcond=None)[0]
      value = 0.5 * x @ q_TxT @ x + c_T @ x
      if np.all(x >= -1e-12) and value < best[0] - 1e-13:
        best = (value, x)
  return best


# -- The QP solver -------------------------------------------------------------------------


@pytest.mark.parametrize("simplex", [True, False])
def test_qp_matches_brute_force(x64, simplex):
  solve = jax.jit(qp.solve, static_argnames="simplex")
  rng = np.random.default_rng(0)
  for trial in range(12):
    num, dim = 4, 1 + trial % 6  # Includes rank-deficient Gram matrices.
    j_TxD = rng.normal(size=(num, dim))
    q_TxT = j_TxD @ j_TxD.T
    c_T = rng.normal(size=num) if simplex else q_TxT[:, trial % num]
    x_T = np.asarray(solve(jnp.asarray(q_TxT), jnp.asarray(c_T), simplex=simplex)[0])
    value, _ = brute_force_qp(q_TxT, c_T, simplex)
    assert np.all(x_T >= 0)
    if simplex:
      np.testing.assert_allclose(x_T.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(0.5 * x_T @ q_TxT @ x_T + c_T @ x_T, value, atol=1e-10)


# -- MGDA ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["conflict", "aligned", "dominated"])
def test_mgda_two_tasks_is_analytic_min_norm_point(x64, case):
  g1, g2 = random_jacobian(1, 2)
  if case == "aligned":
    g2 = g1 + 0.3 * g2
  elif case == "dominated":  # g1 lies between 0 and g2: the min-norm point is g1.
    g2 = 3.0 * g1 + 0.1 * g2
  else:
    g2 = g2 - 1.5 * g1
  gamma = np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0.0, 1.0)
  direction, _ = run(make(mgda.mgda), np.stack([g1, g2]))
  np.testing.assert_allclose(direction, gamma * g1 + (1 - gamma) * g2, atol=1e-12)


@pytest.mark.parametrize("num_tasks", [3, 5])
def test_mgda_matches_brute_force_min_norm(x64, num_tasks):
  for seed in range(3):
    j_TxD = random_jacobian(seed, num_tasks)
    j_TxD[0] -= 2.0 * j_TxD[1]  # Conflicts, so the answer is not a vertex.
    _, w_T = brute_force_qp(j_TxD @ j_TxD.T, np.zeros(num_tasks), simplex=True)
    direction, _ = run(make(mgda.mgda), j_TxD)
    np.testing.assert_allclose(direction, w_T @ j_TxD, atol=1e-10)


@pytest.mark.parametrize("normalization", ["l2", "loss", "loss+"])
def test_mgda_normalized_weights_multiply_raw_gradients(x64, normalization):
  j_TxD = random_jacobian(2, 3)
  losses_T = np.array([0.5, 2.0, 3.0])
  norms_T = np.linalg.norm(j_TxD, axis=1)
  n_T = {"l2": norms_T, "loss": losses_T, "loss+": losses_T * norms_T}[normalization]
  scaled_TxD = j_TxD / n_T[:, None]
  _, w_T = brute_force_qp(scaled_TxD @ scaled_TxD.T, np.zeros(3), simplex=True)
  direction, _ = run(make(mgda.mgda, normalization), j_TxD, losses_T=losses_T)
  np.testing.assert_allclose(direction, w_T @ j_TxD, atol=1e-10)


# -- PCGrad --------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_pcgrad_leaves_non_conflicting_gradients_untouched(x64, reduction):
  j_TxD = np.abs(random_jacobian(3, 4))  # All inner products positive.
  direction, _ = run(make(pcgrad.pcgrad, reduction), j_TxD)
  expected = j_TxD.sum(0) if reduction == "sum" else j_TxD.mean(0)
  np.testing.assert_allclose(direction, expected, atol=1e-12)


def test_pcgrad_two_conflicting_tasks(x64):
  g1, g2 = random_jacobian(4, 2)
  g2 = g2 - (g2 @ g1 / (g1 @ g1) + 0.5) * g1  # <g1, g2> < 0.
  direction, _ = run(make(pcgrad.pcgrad), np.stack([g1, g2]))
  dot = g1 @ g2
  expected = (g1 - dot / (g2 @ g2) * g2) + (g2 - dot / (g1 @ g1) * g1)
  np.testing.assert_allclose(direction, expected, atol=1e-12)
  assert direction @ g1 >= 0 and direction @ g2 >= 0


def test_pcgrad_coefficients_match_sequential_projection(x64):
  j_TxD = random_jacobian(5, 4)
  j_TxD[1] -= 1.5 * j_TxD[0]
  orders_TxT = np.array([[2, 1, 3, 0], [0, 3, 2, 1], [3, 0, 1, 2], [1, 2, 0, 3]])
  coeffs_TxT = pcgrad.projection_coefficients(jnp.asarray(j_TxD @ j_TxD.T),
                                              jnp.asarray(orders_TxT))
  for i, order in enumerate(orders_TxT):
    g = j_TxD[i].copy()
    for j in order:
      if j != i and g @ j_TxD[j] < 0:
        g -= g @ j_TxD[j] / (j_TxD[j] @ j_TxD[j]) * j_TxD[j]
    np.testing.assert_allclose(np.asarray(coeffs_TxT[i]) @ j_TxD, g, atol=1e-12)


# -- GradDrop ------------------------------------------------------------------------------


def test_graddrop_keeps_agreeing_signs_and_picks_one_sign_otherwise(x64):
  j_TxD = random_jacobian(6, 3)
  agree = np.abs(j_TxD) * np.sign(j_TxD[:1])
  np.testing.assert_allclose(run(make(graddrop.graddrop), agree)[0], agree.sum(0), atol=1e-12)
  direction, _ = run(make(graddrop.graddrop), j_TxD, seed=3)
  positive, negative = np.maximum(j_TxD, 0).sum(0), np.minimum(j_TxD, 0).sum(0)
  assert np.all(np.isclose(direction, positive) | np.isclose(direction, negative))
  np.testing.assert_allclose(run(make(graddrop.graddrop, leak=1.0), j_TxD)[0], j_TxD.sum(0),
                             atol=1e-12)


def test_graddrop_keeps_positive_sign_with_probability_purity(x64):
  column = np.array([2.0, -1.0, 0.5])  # Purity (1 + 1.5 / 3.5) / 2 = 5/7.
  grads_T = {"x": jnp.asarray(np.repeat(column[:, None], 20000, axis=1))}
  direction, _ = make(graddrop.graddrop).update(grads_T, (), losses_T=jnp.ones(3),
                                            key=jax.random.key(0))
  frac_positive = np.mean(np.isclose(np.asarray(direction["x"]), 2.5))
  assert abs(frac_positive - 5 / 7) < 0.02


# -- GradVac -------------------------------------------------------------------------------


def test_gradvac_with_zero_targets_is_pcgrad(x64):
  j_TxD = random_jacobian(7, 4)
  j_TxD[2] -= 2.0 * j_TxD[0]
  vac, _ = run(make(gradvac.gradvac), j_TxD, seed=5)
  pc, _ = run(make(pcgrad.pcgrad), j_TxD, seed=5)  # Same key, same task orders.
  np.testing.assert_allclose(vac, pc, atol=1e-7)


def test_gradvac_targets_track_cosines_and_are_reached(x64):
  g1, g2 = random_jacobian(8, 2)
  cos = g1 @ g2 / np.linalg.norm(g1) / np.linalg.norm(g2)
  _, state = run(make(gradvac.gradvac, beta=0.25), np.stack([g1, g2]))
  np.testing.assert_allclose(np.asarray(state.targets), 0.25 * cos * (1 - np.eye(2)),
                             atol=1e-9)
  target = 0.5 * (cos + 1.0)  # Above the current cosine: both gradients are moved.
  targets_TxT = jnp.full((2, 2), target)
  j_TxD = np.stack([g1, g2])
  coeffs_TxT, _ = gradvac.vaccinate(jnp.asarray(j_TxD @ j_TxD.T), targets_TxT,
                                    jnp.asarray([[0, 1], [1, 0]]))
  for i, j in [(0, 1), (1, 0)]:
    g = np.asarray(coeffs_TxT[i]) @ j_TxD
    np.testing.assert_allclose(g @ j_TxD[j] / np.linalg.norm(g) / np.linalg.norm(j_TxD[j]),
                               target, atol=1e-7)


def test_gradvac_per_leaf_equals_gradvac_on_each_leaf(x64):
  j_TxD = random_jacobian(9, 3)
  j_TxD[1] -= 1.5 * j_TxD[0]
  balancer = GRADVAC_PER_LEAF
  direction, state = run(balancer, j_TxD, seed=2)
  direction, state = run(balancer, j_TxD, state=state, seed=3)
  for name, cols in [("b", slice(0, 2)), ("w", slice(2, DIM))]:
    one, one_state = make(gradvac.gradvac), make(gradvac.gradvac).init(3)
    for seed in (2, 3):
      leaf, one_state = jitted(one)({"x": jnp.asarray(j_TxD[:, cols])}, one_state,
                                    jnp.ones(3), jax.random.key(seed))
    np.testing.assert_allclose(direction[cols], np.asarray(leaf["x"]), atol=1e-12)
    np.testing.assert_allclose(np.asarray(state.targets[name]), np.asarray(one_state.targets),
                               atol=1e-12)


# -- CAGrad --------------------------------------------------------------------------------


def test_cagrad_without_radius_is_the_mean(x64):
  j_TxD = random_jacobian(10, 4)
  np.testing.assert_allclose(run(make(cagrad.cagrad, c=0.0), j_TxD)[0], j_TxD.mean(0), atol=1e-12)


def test_cagrad_solves_its_dual_and_is_optimal(x64):
  j_TxD = random_jacobian(11, 4)
  j_TxD[3] -= 2.0 * j_TxD[0]
  g0 = j_TxD.mean(0)
  dual_weights = jax.jit(cagrad.dual_weights)
  for c in (0.2, 0.4, 0.8):
    radius = c * np.linalg.norm(g0)
    dual = lambda w, radius=radius: w @ j_TxD @ g0 + radius * np.linalg.norm(w @ j_TxD)
    ref = min((scipy.optimize.minimize(
        dual, x0, method="SLSQP", bounds=[(0, 1)] * 4,
        constraints={"type": "eq", "fun": lambda w: 1 - w.sum()},
        options={"ftol": 1e-15, "maxiter": 500}) for x0 in np.eye(4) * 0.6 + 0.1),
        key=lambda res: res.fun)
    w_T = np.asarray(dual_weights(jnp.asarray(j_TxD @ j_TxD.T), c)[0])
    assert dual(w_T) <= ref.fun + 1e-10
    gw, ref_gw = w_T @ j_TxD, ref.x @ j_TxD
    direction = g0 + radius * gw / np.linalg.norm(gw)
    np.testing.assert_allclose(direction, g0 + radius * ref_gw / np.linalg.norm(ref_gw),
                               atol=1e-5)
    # Primal optimality: the largest worst-task improvement in the ball ||d - g0|| <= radius
    # is reached on its boundary, with equal improvements for the tasks the dual weights.
    improvement_T = j_TxD @ direction
    support = w_T > 1e-9
    np.testing.assert_allclose(improvement_T[support], improvement_T.min(), atol=1e-9)
    for d in np.random.default_rng(0).normal(size=(200, DIM)):
      d = g0 + radius * d / np.linalg.norm(d)
      assert np.min(j_TxD @ d) <= improvement_T.min() + 1e-12
  np.testing.assert_allclose(run(make(cagrad.cagrad, 0.8), j_TxD)[0], direction / (1 + 0.64),
                             atol=1e-10)
  np.testing.assert_allclose(run(make(cagrad.cagrad, 0.8, rescale=0), j_TxD)[0], direction,
                             atol=1e-10)


# -- IMTL-G, Nash-MTL, FairGrad ------------------------------------------------------------


def test_imtl_projects_equally_on_every_unit_gradient(x64):
  j_TxD = random_jacobian(12, 4) * np.array([[1.0], [5.0], [0.2], [2.0]])
  j_TxD[1] -= 2.0 * j_TxD[0]
  direction, _ = run(make(imtl.imtl), j_TxD)
  units_TxD = j_TxD / np.linalg.norm(j_TxD, axis=1, keepdims=True)
  projections_T = units_TxD @ direction
  np.testing.assert_allclose(projections_T, projections_T[0], rtol=1e-10)
  alpha_T = np.linalg.solve(j_TxD @ j_TxD.T, np.linalg.norm(j_TxD, axis=1))
  np.testing.assert_allclose(direction, alpha_T @ j_TxD / alpha_T.sum(), atol=1e-10)


def test_nash_mtl_satisfies_the_bargaining_condition(x64):
  j_TxD = random_jacobian(13, 4) * np.array([[1.0], [3.0], [0.1], [1.0]])
  j_TxD[2] -= 0.05 * j_TxD[0]
  gram_TxT = j_TxD @ j_TxD.T
  alpha_T = np.asarray(jax.jit(nash_mtl.bargaining_weights)(jnp.asarray(gram_TxT)))
  assert np.all(alpha_T > 0)
  np.testing.assert_allclose(gram_TxT / np.linalg.norm(gram_TxT) @ alpha_T, 1 / alpha_T,
                             rtol=1e-10)
  direction, _ = run(make(nash_mtl.nash_mtl), j_TxD)
  np.testing.assert_allclose(direction, alpha_T @ j_TxD, atol=1e-10)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 5.0])
def test_fairgrad_weights_satisfy_their_fixed_point(x64, alpha):
  j_TxD = random_jacobian(14, 4) * np.array([[1.0], [10.0], [0.1], [1.0]])
  j_TxD[3] -= 0.5 * j_TxD[0]
  gram_TxT = j_TxD @ j_TxD.T
  w_T = np.asarray(FAIR_WEIGHTS(jnp.asarray(gram_TxT), alpha))
  assert np.all(w_T > 0)
  np.testing.assert_allclose(gram_TxT @ w_T, w_T ** (-1 / alpha), rtol=1e-10)
  if alpha == 2.0:
    direction, _ = run(make(fairgrad.fairgrad, alpha), j_TxD)
    np.testing.assert_allclose(direction, w_T @ j_TxD, atol=1e-10)


def test_fairgrad_gives_zero_weight_to_a_zero_gradient(x64):
  j_TxD = random_jacobian(15, 3)
  j_TxD[1] = 0.0
  gram_TxT = j_TxD @ j_TxD.T
  w_T = np.asarray(FAIR_WEIGHTS(jnp.asarray(gram_TxT), 2.0))
  assert w_T[1] == 0
  np.testing.assert_allclose((gram_TxT @ w_T)[[0, 2]], w_T[[0, 2]] ** -0.5, rtol=1e-10)


# -- Aligned-MTL, UPGrad -------------------------------------------------------------------


@pytest.mark.parametrize("scale_mode", ["min", "median", "rmse"])
def test_aligned_mtl_aligns_singular_values(x64, scale_mode):
  j_TxD = random_jacobian(16, 4) * np.array([[1.0], [4.0], [0.3], [1.0]])
  j_TxD[1] -= 2.0 * j_TxD[0]
  lam_T = np.linalg.eigvalsh(j_TxD @ j_TxD.T)
  sigma_sq = {"min": lam_T.min(), "median": np.median(lam_T), "rmse": lam_T.mean()}[scale_mode]
  w_TxT = np.asarray(jax.jit(aligned_mtl.alignment, static_argnums=1)(
      jnp.asarray(j_TxD @ j_TxD.T), scale_mode))
  aligned_TxD = w_TxT.T @ j_TxD
  np.testing.assert_allclose(np.linalg.svd(aligned_TxD, compute_uv=False),
                             np.sqrt(sigma_sq), rtol=1e-9)
  np.testing.assert_allclose(aligned_TxD @ aligned_TxD.T, sigma_sq * np.eye(4), atol=1e-9)
  direction, _ = run(make(aligned_mtl.aligned_mtl, scale_mode), j_TxD)
  np.testing.assert_allclose(direction, aligned_TxD.sum(0), atol=1e-10)


def test_aligned_mtl_drops_the_null_space(x64):
  j_TxD = random_jacobian(17, 3)
  j_TxD = np.concatenate([j_TxD, j_TxD[:1] + j_TxD[1:2]])  # Rank 3 with 4 tasks.
  gram_TxT = j_TxD @ j_TxD.T
  w_TxT = np.asarray(aligned_mtl.alignment(jnp.asarray(gram_TxT)))
  lam_T = np.linalg.eigvalsh(gram_TxT)
  projector_TxT = gram_TxT @ np.linalg.pinv(gram_TxT)
  np.testing.assert_allclose(w_TxT.T @ gram_TxT @ w_TxT, lam_T[1:].min() * projector_TxT,
                             atol=1e-9)


def test_upgrad_projections_solve_the_dual_cone_problem(x64):
  j_TxD = random_jacobian(18, 4)
  j_TxD[1] -= 2.0 * j_TxD[0]
  j_TxD[3] -= 1.0 * j_TxD[2]
  gram_TxT = j_TxD @ j_TxD.T
  v_TxT = np.asarray(jax.jit(upgrad.projection_weights)(jnp.asarray(gram_TxT)))
  for i in range(4):  # KKT of min v^T G v s.t. v >= e_i.
    slack_T, dual_T = v_TxT[i] - np.eye(4)[i], gram_TxT @ v_TxT[i]
    assert np.all(slack_T >= 0) and np.all(dual_T >= -1e-10)
    np.testing.assert_allclose(slack_T * dual_T, 0.0, atol=1e-10)
  direction, _ = run(make(upgrad.upgrad, reg_eps=0.0), j_TxD)
  assert np.all(j_TxD @ direction >= -1e-10)
  np.testing.assert_allclose(direction, v_TxT.mean(0) @ j_TxD, atol=1e-10)


def test_upgrad_is_the_mean_without_conflict(x64):
  j_TxD = np.abs(random_jacobian(19, 4))
  np.testing.assert_allclose(run(make(upgrad.upgrad), j_TxD)[0], j_TxD.mean(0), atol=1e-12)


# -- All methods ---------------------------------------------------------------------------

DETERMINISTIC = {
    "mgda": lambda: make(mgda.mgda),
    "mgda-l2": lambda: make(mgda.mgda, "l2"),
    "mgda-loss+": lambda: make(mgda.mgda, "loss+"),
    "cagrad": lambda: make(cagrad.cagrad),
    "imtl": lambda: make(imtl.imtl),
    "nash_mtl": lambda: make(nash_mtl.nash_mtl),
    "fairgrad": lambda: make(fairgrad.fairgrad, 2.0),
    "aligned_mtl": lambda: make(aligned_mtl.aligned_mtl),
    "aligned_mtl-median": lambda: make(aligned_mtl.aligned_mtl, "median"),
    "upgrad": lambda: make(upgrad.upgrad),
}
RANDOM = {
    "pcgrad": lambda: make(pcgrad.pcgrad),
    "graddrop": lambda: make(graddrop.graddrop),
    "gradvac": lambda: make(gradvac.gradvac),
    "gradvac-leaf": lambda: GRADVAC_PER_LEAF,
}


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_permuting_tasks_leaves_the_direction_unchanged(x64, name):
  j_TxD = random_jacobian(20, 5)
  j_TxD[1] -= 1.5 * j_TxD[0]
  j_TxD[4] -= 0.8 * j_TxD[2]
  losses_T = np.array([0.5, 1.0, 1.5, 2.0, 3.0])
  direction, _ = run(DETERMINISTIC[name](), j_TxD, losses_T=losses_T)
  perm = np.array([3, 0, 4, 2, 1])
  permuted, _ = run(DETERMINISTIC[name](), j_TxD[perm], losses_T=losses_T[perm])
  np.testing.assert_allclose(permuted, direction, atol=1e-9)


@pytest.mark.parametrize("name", sorted(DETERMINISTIC) + sorted(RANDOM))
def test_jits_and_compiles_once(name):
  balancer = {**DETERMINISTIC, **RANDOM}[name]()
  state = balancer.init(3)
  for seed in range(3):
    before = _TRACES.get(balancer, 0)
    j_TxD = random_jacobian(21 + seed, 3).astype(np.float32)
    direction, state = run(balancer, j_TxD, state=state, seed=seed)
    assert np.all(np.isfinite(direction))
    assert _TRACES.get(balancer, 0) - before <= (seed == 0)
