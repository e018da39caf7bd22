"""Knowledge distillation and gradient reversal against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from metalm.tools import distillation, domain


def _softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _logits(seed, shape=(4, 5)):
  return jax.random.normal(jax.random.key(seed), shape) * 3.0


def test_kd_soft_term_is_zero_when_student_equals_teacher():
  logits = _logits(0)
  labels_B = jnp.array([0, 1, 2, 3])
  loss, metrics = distillation.kd_loss(logits, logits, labels_B, temperature=3.0, alpha=0.5)
  assert abs(float(metrics["kd"])) < 1e-6
  np.testing.assert_allclose(loss, 0.5 * metrics["ce"], rtol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 20.0])
def test_kd_matches_numpy_reference_and_gradient_closed_form(temperature):
  s, t = _logits(1), _logits(2)
  labels_B = jnp.array([4, 0, 1, 2])
  alpha = 0.7
  loss, _ = distillation.kd_loss(s, t, labels_B, temperature=temperature, alpha=alpha)
  s_np, t_np = np.asarray(s, np.float64), np.asarray(t, np.float64)
  p_t, p_s = _softmax(t_np / temperature), _softmax(s_np / temperature)
  kl = np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), -1))
  ce = np.mean(-np.log(_softmax(s_np))[np.arange(4), np.asarray(labels_B)])
  np.testing.assert_allclose(loss, alpha * temperature**2 * kl + (1 - alpha) * ce, rtol=1e-4)

  grad = jax.grad(lambda s_: distillation.soft_kl(s_, t, temperature=temperature))(s)
  np.testing.assert_allclose(grad, (p_s - p_t) * temperature / 4, rtol=1e-4, atol=1e-6)
  # No gradient reaches the teacher.
  teacher_grad = jax.grad(lambda t_: distillation.soft_kl(s, t_, temperature=temperature))(t)
  assert float(jnp.max(jnp.abs(teacher_grad))) == 0.0


def test_soft_gradient_scale_is_roughly_temperature_independent():
  s, t = _logits(3) * 0.1, _logits(4) * 0.1
  norms = [
      float(jnp.linalg.norm(jax.grad(distillation.soft_kl)(s, t, temperature=T)))
      for T in (10.0, 100.0)
  ]
  np.testing.assert_allclose(norms[0], norms[1], rtol=0.05)


def test_multi_teacher_is_weighted_sum_of_single_teacher_losses():
  tasks = {"a": (_logits(5), _logits(6), jnp.array([0, 1, 2, 3])),
           "b": (_logits(7, (4, 2)), _logits(8, (4, 2)), jnp.array([1, 0, 1, 1]))}
  teachers = {name: (lambda x, t=t: t) for name, (_, t, _) in tasks.items()}
  teacher_logits = distillation.teacher_logits(teachers, jnp.zeros((4, 1)))
  student_logits = {name: s for name, (s, _, _) in tasks.items()}
  labels = {name: y for name, (_, _, y) in tasks.items()}
  loss, metrics = distillation.multi_teacher_kd_loss(
      student_logits, teacher_logits, labels, temperature=2.0, alpha=0.6,
      task_weights={"a": 1.0, "b": 0.5},
  )
  expected = sum(
      w * distillation.kd_loss(s, t, y, temperature=2.0, alpha=0.6)[0]
      for w, (s, t, y) in zip((1.0, 0.5), tasks.values(), strict=True)
  )
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert {"a/kd", "b/ce", "a/loss"} <= set(metrics)
  with pytest.raises(ValueError):
    distillation.multi_teacher_kd_loss({"a": tasks["a"][0]}, teacher_logits, labels)


def test_gradient_reversal_identity_forward_negated_scaled_backward():
  x = jnp.array([1.0, -2.0, 3.0])
  f = lambda x_, scale: jnp.sum(jnp.sin(domain.gradient_reversal(x_, scale)))
  np.testing.assert_array_equal(domain.gradient_reversal(x, 0.5), x)
  np.testing.assert_allclose(jax.grad(f)(x, 0.5), -0.5 * jnp.cos(x), rtol=1e-6)
  np.testing.assert_allclose(jax.jit(jax.grad(f))(x, 2.0), -2.0 * jnp.cos(x), rtol=1e-6)
  assert float(jax.grad(f, argnums=1)(x, 0.5)) == 0.0
  assert float(domain.reversal_schedule(0.0)) == 0.0
  assert abs(float(domain.reversal_schedule(1.0)) - 1.0) < 1e-4


def test_dann_loss_reverses_only_the_domain_gradient_at_the_features():
  features_BxD = jax.random.normal(jax.random.key(9), (6, 3))
  labels_B = jnp.array([0, 1, 0, 1, 0, 1])
  domain_B = jnp.array([0, 0, 0, 1, 1, 1])
  w_task_DxC = jax.random.normal(jax.random.key(10), (3, 2))
  w_dom_Dx2 = jax.random.normal(jax.random.key(11), (3, 2))

  def loss(features, scale):
    return domain.dann_loss(
        features, labels_B, domain_B, task_head=lambda f: f @ w_task_DxC,
        domain_head=lambda f: f @ w_dom_Dx2, reversal_scale=scale,
    )

  (total, metrics), grad = jax.value_and_grad(loss, has_aux=True)(features_BxD, 0.3)
  np.testing.assert_allclose(total, metrics["task_loss"] + metrics["domain_loss"], rtol=1e-6)
  task_grad = jax.grad(lambda f: loss(f, 0.0)[0])(features_BxD)  # scale 0: task part only.
  plain_domain_grad = jax.grad(  # The domain classifier's loss without the reversal.
      lambda f: optax.softmax_cross_entropy_with_integer_labels(f @ w_dom_Dx2, domain_B).mean()
  )(features_BxD)
  np.testing.assert_allclose(grad, task_grad - 0.3 * plain_domain_grad, rtol=1e-5, atol=1e-6)
  # Target examples carry no task gradient.
  np.testing.assert_allclose(task_grad[3:], 0.0, atol=1e-7)
