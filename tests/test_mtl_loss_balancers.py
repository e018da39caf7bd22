"""Loss balancers against closed forms, their scalarizations and the gradient path."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import test_util

from metalm.mtl import (
    base,
    db_mtl,
    dwa,
    equal_weighting,
    famo,
    gls,
    gradnorm,
    options,
    rlw,
    scale_invariant,
    stch,
    uncertainty,
)

# Strict promotion everywhere except around optax's Adam (FAMO, GradNorm's default), whose
# ``decay ** count`` mixes float and int32.
strict = pytest.mark.usefixtures("strict_promotion")
ADAM_BASED = ("famo",)


def promotion(name):
  return jax.numpy_dtype_promotion("standard" if name in ADAM_BASED else "strict")

NUM_TASKS = 3

LOSS_BALANCERS = {
    "equal_weighting": equal_weighting.equal_weighting,
    "scale_invariant": scale_invariant.scale_invariant,
    "uncertainty": lambda: uncertainty.uncertainty(optax.sgd(0.1)),
    "dwa": dwa.dwa,
    "rlw": rlw.rlw,
    "gls": gls.gls,
    "famo": famo.famo,
    "stch": lambda: stch.stch(0.5, warmup_steps=2),
}
DETERMINISTIC = [name for name in LOSS_BALANCERS if name != "rlw"]


def jitted(balancer):
  """The balancer with a jitted update (eager dispatch compiles every primitive)."""
  return balancer._replace(update=jax.jit(balancer.update))


def losses_fn(params):
  """Three positive task losses of a shared vector ``w`` and a matrix ``m``."""
  w, m = params["w"], params["m_DxD"]
  a = jnp.sum((m @ w - 1.0) ** 2) + 0.1
  b = jnp.sum(jnp.sin(w) ** 2) + jnp.sum(m**2) + 0.2
  c = jnp.exp(0.1 * jnp.sum(w)) + 0.3
  return jnp.stack([a, b, c])


def make_params(key, dtype=jnp.float32):
  w_key, m_key = jax.random.split(key)
  return {"w": jax.random.normal(w_key, (4,), dtype),
          "m_DxD": 0.5 * jax.random.normal(m_key, (4, 4), dtype)}


def primed(balancer, num_tasks=NUM_TASKS, steps=3, perm=None):
  """A state after a few updates on decreasing losses (so history-based weights are live)."""
  state = balancer.init(num_tasks)
  update = jax.jit(balancer.update)
  base_T = jnp.linspace(1.0, 3.0, num_tasks)
  for i in range(steps):
    losses_T = base_T * (1.0 + 0.5 * jnp.cos(jnp.arange(num_tasks) + i)) / (i + 1)
    if perm is not None:
      losses_T = losses_T[perm]
    _, state = update(losses_T, state, key=jax.random.key(i))
  return state


@strict
def test_equal_weighting_is_the_gradient_of_the_sum():
  params = make_params(jax.random.key(0))
  balancer = equal_weighting.equal_weighting()
  losses_T, vjp_fn = jax.vjp(losses_fn, params)
  weights_T, _ = balancer.update(losses_T, balancer.init(NUM_TASKS), key=jax.random.key(1))
  (got,) = vjp_fn(weights_T)
  want = jax.grad(lambda p: jnp.sum(losses_fn(p)))(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, want)


@pytest.mark.parametrize("name", list(LOSS_BALANCERS))
def test_cheap_path_equals_gradient_path(name):
  with promotion(name):
    check_cheap_path_equals_gradient_path(name)


def check_cheap_path_equals_gradient_path(name):
  balancer = jitted(LOSS_BALANCERS[name]())
  params = make_params(jax.random.key(0))
  state = primed(balancer)
  key = jax.random.key(7)
  losses_T, vjp_fn = jax.vjp(losses_fn, params)
  weights_T, new_state = balancer.update(losses_T, state, key=key)
  (cheap,) = vjp_fn(weights_T)
  _, grads_T, _ = base.per_task_grads(losses_fn, params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               cheap, base.combine(weights_T, grads_T))
  # The same weights through the GradBalancer adapter, state included.
  as_grad = options.from_loss_balancer(balancer)
  direction, grad_state = as_grad.update(
      grads_T, options.WeightedState(jnp.ones(NUM_TASKS), state), losses_T=losses_T, key=key)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               cheap, direction)
  np.testing.assert_allclose(grad_state.weights_T, weights_T, rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, grad_state.inner, new_state)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_loss_balancers_are_permutation_equivariant(name):
  with promotion(name):
    check_permutation_equivariance(name)


def check_permutation_equivariance(name):
  balancer = jitted(LOSS_BALANCERS[name]())
  perm = np.array([2, 0, 1])
  losses_T = jnp.array([0.7, 1.9, 0.4])
  weights_T, _ = balancer.update(losses_T, primed(balancer), key=jax.random.key(0))
  permuted_T, _ = balancer.update(losses_T[perm], primed(balancer, perm=perm),
                                  key=jax.random.key(0))
  np.testing.assert_allclose(permuted_T, weights_T[perm], rtol=1e-5)


@pytest.mark.parametrize("make", [gradnorm.gradnorm, db_mtl.db_mtl])
def test_grad_balancers_are_permutation_equivariant(make):
  balancer = jitted(make())
  perm = np.array([1, 2, 0])
  grads_T = {"w": jax.random.normal(jax.random.key(0), (NUM_TASKS, 5))}
  losses_T = jnp.array([0.7, 1.9, 0.4])

  def run(grads_T, losses_T):
    state = balancer.init(NUM_TASKS)
    for i in range(2):
      direction, state = balancer.update(
          grads_T, state, losses_T=losses_T / (i + 1), key=jax.random.key(i))
    return direction, options.weights_of(state)

  direction, weights_T = run(grads_T, losses_T)
  permuted, permuted_T = run(jax.tree.map(lambda g: g[perm], grads_T), losses_T[perm])
  np.testing.assert_allclose(permuted["w"], direction["w"], rtol=1e-5, atol=1e-6)
  if weights_T is not None:
    np.testing.assert_allclose(permuted_T, weights_T[perm], rtol=1e-5)


@strict
def test_uncertainty_optimal_variance_is_the_loss():
  balancer = uncertainty.uncertainty(optax.sgd(0.1))
  losses_T = jnp.array([0.5, 2.0, 4.0])

  def body(state, _):
    return balancer.update(losses_T, state)[1], None

  state, _ = jax.lax.scan(body, balancer.init(3), length=2000)
  np.testing.assert_allclose(jnp.exp(state.log_vars_T), losses_T, rtol=1e-4)
  weights_T, _ = balancer.update(losses_T, state)
  np.testing.assert_allclose(weights_T * losses_T, 1.0, rtol=1e-4)


def test_famo_matches_hand_worked_update():
  balancer = jitted(famo.famo(learning_rate=0.025, weight_decay=0.01))
  state = balancer.init(2)
  weights_T, state = balancer.update(jnp.array([1.0, 1.0]), state)
  np.testing.assert_allclose(weights_T, [0.5, 0.5], rtol=1e-6)
  np.testing.assert_allclose(state.logits_T, [0.0, 0.0])  # No "before" loss yet.
  # Task 0's log loss fell by 1, task 1's not at all: delta = (1, 0); at w = 0,
  # J_softmax^T delta = z (delta - z.delta) = (0.25, -0.25); Adam's first step is
  # -lr sign(g) (bias-corrected), and the L2 term vanishes at w = 0.
  losses_T = jnp.array([np.exp(-1.0), 1.0])
  weights_T, state = balancer.update(losses_T, state)
  np.testing.assert_allclose(state.logits_T, [-0.025, 0.025], rtol=1e-5)
  z_T = jax.nn.softmax(jnp.array([-0.025, 0.025]))
  want_T = (z_T / losses_T) / jnp.sum(z_T / losses_T)
  np.testing.assert_allclose(weights_T, want_T, rtol=1e-5)
  np.testing.assert_allclose(state.prev_losses_T, losses_T)


def test_famo_weights_are_the_gradient_of_its_objective():
  balancer = jitted(famo.famo())
  state = primed(balancer)
  losses_T = jnp.array([0.7, 1.9, 0.4])
  weights_T, new_state = balancer.update(losses_T, state)
  z_T = jax.nn.softmax(new_state.logits_T)
  c = jnp.sum(z_T / losses_T)
  want = jax.grad(lambda x_T: jnp.sum(z_T / c * jnp.log(x_T)))(losses_T)
  np.testing.assert_allclose(weights_T, want, rtol=1e-5)


@strict
def test_dwa_uses_the_ratio_of_the_last_two_epochs():
  balancer = jitted(dwa.dwa(temperature=2.0, steps_per_epoch=2))
  state = balancer.init(2)
  epochs = [[1.0, 2.0], [3.0, 2.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
  weights = []
  for losses in epochs:  # Two updates per epoch, mean = losses.
    for _ in range(2):
      weights_T, state = balancer.update(jnp.array(losses), state)
      weights.append(weights_T)
  np.testing.assert_allclose(weights[3], [1.0, 1.0])  # Only one epoch complete.
  ratio_T = jnp.array([3.0 / 1.0, 2.0 / 2.0])
  np.testing.assert_allclose(weights[4], 2 * jax.nn.softmax(ratio_T / 2.0), rtol=1e-6)
  ratio_T = jnp.array([1.0 / 3.0, 1.0 / 2.0])
  np.testing.assert_allclose(weights[6], 2 * jax.nn.softmax(ratio_T / 2.0), rtol=1e-6)


@strict
def test_rlw_weights_are_a_random_softmax():
  balancer = rlw.rlw()
  losses_T = jnp.ones(4)
  a, _ = balancer.update(losses_T, (), key=jax.random.key(0))
  b, _ = balancer.update(losses_T, (), key=jax.random.key(1))
  np.testing.assert_allclose(jnp.sum(a), 1.0, rtol=1e-6)
  np.testing.assert_allclose(a, jax.nn.softmax(jax.random.normal(jax.random.key(0), (4,))))
  assert not np.allclose(a, b)


@strict
def test_stch_warms_up_then_tends_to_the_max():
  balancer = stch.stch(mu=1e-3, warmup_steps=2)
  state = balancer.init(3)
  for losses in ([1.0, 2.0, 4.0], [3.0, 2.0, 4.0]):
    weights_T, state = balancer.update(jnp.array(losses), state)
    np.testing.assert_allclose(weights_T, 1.0 / jnp.array(losses), rtol=1e-6)
  np.testing.assert_allclose(state.nadir_T, [2.0, 2.0, 4.0])
  # log(L / nadir) = (log 1.5, 0, log 2): the smooth max puts all weight on task 2.
  losses_T = jnp.array([3.0, 2.0, 8.0])
  weights_T, _ = balancer.update(losses_T, state)
  np.testing.assert_allclose(weights_T, [0.0, 0.0, 3.0 / 8.0], atol=1e-6)


SCALARIZATIONS = {
    "scale_invariant": (scale_invariant.scale_invariant, lambda x_T: jnp.sum(jnp.log(x_T))),
    "gls": (gls.gls, lambda x_T: jnp.prod(x_T) ** (1.0 / x_T.shape[0])),
    "stch": (lambda: stch.stch(0.3, ideal=0.1, preference=jnp.array([1.0, 2.0, 0.5])),
             lambda x_T: 3 * 0.3 * jax.nn.logsumexp(
                 jnp.array([1.0, 2.0, 0.5]) * (jnp.log(x_T) - 0.1) / 0.3)),
}


@strict
@pytest.mark.parametrize("name", list(SCALARIZATIONS))
def test_weights_give_the_gradient_of_the_scalarization(name, x64):
  """Finite differences of ``S(losses(params))`` against the weighted backward pass."""
  make, scalarization = SCALARIZATIONS[name]
  balancer = make()
  state = balancer.init(NUM_TASKS)

  @jax.custom_vjp
  def objective(params):
    return scalarization(losses_fn(params))

  def fwd(params):
    losses_T, vjp_fn = jax.vjp(losses_fn, params)
    weights_T, _ = balancer.update(losses_T, state, key=jax.random.key(0))
    return scalarization(losses_T), (vjp_fn, weights_T)

  def bwd(res, g):
    vjp_fn, weights_T = res
    return vjp_fn(g * weights_T.astype(jnp.float64))

  objective.defvjp(fwd, bwd)
  params = make_params(jax.random.key(3), jnp.float64)
  test_util.check_grads(objective, (params,), order=1, modes=["rev"], eps=1e-6)


@strict
def test_gradnorm_moves_weights_toward_equal_weighted_norms():
  balancer = jitted(gradnorm.gradnorm(alpha=0.0, tx=optax.sgd(0.05)))
  grads_T = {"w": jnp.array([[1.0, 0.0], [0.0, 3.0]])}  # Norms 1 and 3.
  losses_T = jnp.array([1.0, 1.0])
  state = balancer.init(2)
  gaps = []
  for i in range(30):
    _, state = balancer.update(grads_T, state, losses_T=losses_T, key=jax.random.key(i))
    gaps.append(abs(state.inner.weights_T[0] * 1.0 - state.inner.weights_T[1] * 3.0))
    np.testing.assert_allclose(jnp.sum(state.inner.weights_T), 2.0, rtol=1e-6)
  assert gaps[-1] < 0.2 * gaps[0]
  # Equal weighted norms: w = (1.5, 0.5).
  np.testing.assert_allclose(state.inner.weights_T, [1.5, 0.5], atol=0.1)


@strict
def test_gradnorm_restoring_force_favours_the_slow_task():
  balancer = jitted(gradnorm.gradnorm(alpha=1.5, tx=optax.sgd(0.05)))
  grads_T = {"w": jnp.eye(2)}
  state = balancer.init(2)
  _, state = balancer.update(grads_T, state, losses_T=jnp.array([1.0, 1.0]))
  for _ in range(20):  # Task 1's loss has not moved while task 0's halved.
    _, state = balancer.update(grads_T, state, losses_T=jnp.array([0.5, 1.0]))
  assert state.inner.weights_T[1] > 1.2 > 0.8 > state.inner.weights_T[0]


@strict
def test_db_mtl_first_step_closed_form():
  balancer = db_mtl.db_mtl(beta=0.9)
  grads_T = {"w": jnp.array([[2.0, 0.0], [0.0, 1.0]])}
  losses_T = jnp.array([2.0, 0.25])
  direction, state = balancer.update(grads_T, balancer.init(2), losses_T=losses_T)
  # EMA after one step: 0.1 * g / L = (0.1, 0), (0, 0.4); both rescaled to norm 0.4.
  np.testing.assert_allclose(direction["w"], [0.4, 0.4], rtol=1e-5)
  sized = db_mtl.db_mtl(beta=0.9, grads_like={"w": jnp.zeros(2)})
  same, sized_state = sized.update(grads_T, sized.init(2), losses_T=losses_T)
  np.testing.assert_allclose(same["w"], direction["w"])
  assert jax.tree.structure(sized_state) == jax.tree.structure(sized.init(2))
