"""Attacks stay in their budget; PGD beats FGSM; robust accuracy <= clean accuracy."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from metalm.tools import robustness

EPSILON = 0.1


@functools.cache
def _trained_mlp():
  """A tiny MLP trained a few steps on two Gaussian blobs inside [0, 1]^D."""
  key_x, key_init = jax.random.split(jax.random.key(0))
  labels_B = jnp.arange(64) % 2
  centers_BxD = jnp.where(labels_B[:, None] == 1, 0.6, 0.4) * jnp.ones((64, 6))
  x_BxD = jnp.clip(centers_BxD + 0.1 * jax.random.normal(key_x, (64, 6)), 0.0, 1.0)
  k1, k2 = jax.random.split(key_init)
  params = {"w1": 0.5 * jax.random.normal(k1, (6, 16)), "w2": 0.5 * jax.random.normal(k2, (16, 2))}

  def apply(params, x):
    return jnp.tanh(x @ params["w1"]) @ params["w2"]

  def loss(params, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(apply(params, x), y).mean()

  tx = optax.sgd(0.5)
  opt_state = tx.init(params)
  for _ in range(30):
    grads = jax.grad(loss)(params, x_BxD, labels_B)
    updates, opt_state = tx.update(grads, opt_state)
    params = optax.apply_updates(params, updates)
  return functools.partial(apply, params), loss, params, x_BxD, labels_B


def _objective(fn, y_B):
  return lambda x: optax.softmax_cross_entropy_with_integer_labels(fn(x), y_B)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("make", ["fgsm", "pgd"])
def test_attack_stays_in_epsilon_ball_and_valid_range(norm, make):
  fn, _, _, x_BxD, y_B = _trained_mlp()
  x_BxD = x_BxD.at[0].set(0.0).at[1].set(1.0)  # Points on the range's boundary.
  attack = (robustness.fgsm(EPSILON, norm=norm) if make == "fgsm"
            else robustness.pgd(EPSILON, norm=norm, steps=5, step_size=0.05))
  x_adv = attack(_objective(fn, y_B), x_BxD, jax.random.key(1))
  delta_BxD = x_adv - x_BxD
  size_B = (jnp.max(jnp.abs(delta_BxD), -1) if norm == "linf"
            else jnp.linalg.norm(delta_BxD, axis=-1))
  assert float(jnp.max(size_B)) <= EPSILON + 1e-6
  assert float(jnp.max(size_B)) > EPSILON / 2  # It moved.
  assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_l2_random_start_and_unbounded_inputs():
  x_BxLxD = jax.random.normal(jax.random.key(2), (3, 4, 5))  # Like token embeddings.
  objective = lambda x: jnp.sum(x**3, axis=(1, 2))
  attack = robustness.pgd(0.5, norm="l2", steps=3, clip=None)
  x_adv = attack(objective, x_BxLxD, jax.random.key(3))
  norms_B = jnp.sqrt(jnp.sum((x_adv - x_BxLxD) ** 2, axis=(1, 2)))
  assert float(norms_B.max()) <= 0.5 + 1e-5
  with pytest.raises(ValueError):
    robustness.pgd(0.5, norm="l1")


@pytest.mark.parametrize("norm,epsilon", [("linf", EPSILON), ("l2", 0.25)])
def test_pgd_loss_at_least_fgsm_loss(norm, epsilon):
  fn, _, _, x_BxD, y_B = _trained_mlp()
  objective = _objective(fn, y_B)
  fgsm_x = robustness.fgsm(epsilon, norm=norm)(objective, x_BxD, None)
  pgd_x = robustness.pgd(epsilon, norm=norm, steps=10, random_start=False)(
      objective, x_BxD, None)
  clean, fgsm_loss, pgd_loss = (float(objective(x).mean()) for x in (x_BxD, fgsm_x, pgd_x))
  assert fgsm_loss > clean
  assert pgd_loss >= fgsm_loss - 1e-6


def test_robust_accuracy_at_most_clean_accuracy():
  fn, _, _, x_BxD, y_B = _trained_mlp()
  result = robustness.robust_accuracy(fn, x_BxD, y_B, robustness.pgd(EPSILON, steps=5),
                                      jax.random.key(4))
  assert float(result["clean_accuracy"]) > 0.8
  assert float(result["robust_accuracy"]) <= float(result["clean_accuracy"])
  assert float(result["robust_accuracy"]) < float(result["clean_accuracy"])


def test_adversarial_loss_is_loss_on_attacked_inputs_with_param_gradient():
  _, loss, params, x_BxD, y_B = _trained_mlp()
  attack = robustness.fgsm(EPSILON)
  adv_loss = robustness.adversarial_loss(loss, attack)
  value, grads = jax.jit(jax.value_and_grad(adv_loss))(params, x_BxD, y_B, key=jax.random.key(5))
  x_adv = attack(lambda x: loss(params, x, y_B), x_BxD, None)
  np.testing.assert_allclose(value, loss(params, x_adv, y_B), rtol=1e-5)
  np.testing.assert_allclose(grads["w1"], jax.grad(loss)(params, x_adv, y_B)["w1"], rtol=1e-4,
                             atol=1e-6)
  assert value > loss(params, x_BxD, y_B)
  with_aux = robustness.adversarial_loss(lambda p, x, y: (loss(p, x, y), {}), attack,
                                         has_aux=True)
  np.testing.assert_allclose(with_aux(params, x_BxD, y_B, key=None)[0], value, rtol=1e-5)
