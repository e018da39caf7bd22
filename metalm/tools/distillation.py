"""Knowledge distillation: temperature-scaled KD and multi-teacher multitask KD.

Losses follow ``metalm.losses``: ``(scalar, metrics)``. Teacher logits are constants
(gradient-stopped); only the student is trained.
"""

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import optax


def soft_kl(student_logits_BxC, teacher_logits_BxC, *, temperature: float = 1.0):
  """``T^2 * KL(softmax(t / T) || softmax(s / T))``, averaged over the batch.

  Hinton, Vinyals & Dean, 2015, arXiv:1503.02531.

  The ``T^2`` factor keeps the gradient scale independent of ``T``: its gradient with
  respect to the student logits is ``T * (softmax(s / T) - softmax(t / T)) / B``.
  """
  teacher_logits_BxC = jax.lax.stop_gradient(teacher_logits_BxC)
  log_p_teacher_BxC = jax.nn.log_softmax(teacher_logits_BxC / temperature, axis=-1)
  log_p_student_BxC = jax.nn.log_softmax(student_logits_BxC / temperature, axis=-1)
  kl_B = jnp.sum(jnp.exp(log_p_teacher_BxC) * (log_p_teacher_BxC - log_p_student_BxC), -1)
  return temperature**2 * jnp.mean(kl_B)


def kd_loss(
    student_logits_BxC,
    teacher_logits_BxC,
    labels_B,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
):
  """``alpha * T^2 * KL(teacher || student) + (1 - alpha) * CE(student, labels)``.

  Hinton, Vinyals & Dean, 2015, arXiv:1503.02531.

  Args:
    student_logits_BxC: student outputs.
    teacher_logits_BxC: teacher outputs (gradient-stopped).
    labels_B: integer labels for the hard-label term, or None (then ``alpha`` must be 1).
    temperature: softmax temperature ``T`` of the soft term.
    alpha: weight of the soft term.

  Returns:
    ``(loss, {"kd": soft term, "ce": hard term, "accuracy": student accuracy})``.
  """
  soft = soft_kl(student_logits_BxC, teacher_logits_BxC, temperature=temperature)
  metrics = {"kd": soft}
  if labels_B is None:
    if alpha != 1.0:
      raise ValueError("kd_loss without labels needs alpha=1.0.")
    return soft, metrics
  hard = optax.softmax_cross_entropy_with_integer_labels(student_logits_BxC, labels_B).mean()
  predictions_B = jnp.argmax(student_logits_BxC, -1).astype(labels_B.dtype)
  metrics.update(ce=hard, accuracy=jnp.mean(predictions_B == labels_B))
  return alpha * soft + (1.0 - alpha) * hard, metrics


def teacher_logits(teachers: Mapping[str, Callable[[jax.Array], jax.Array]], x):
  """Each single-task teacher's logits on ``x``: ``{task: teacher(x)}``, gradient-stopped."""
  return {task: jax.lax.stop_gradient(fn(x)) for task, fn in teachers.items()}


def multi_teacher_kd_loss(
    student_logits: Mapping[str, jax.Array],
    teacher_logits: Mapping[str, jax.Array],
    labels: Mapping[str, jax.Array] | None = None,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
    task_weights: Mapping[str, float] | None = None,
):
  """Distils several single-task teachers into one multitask student.

  Hinton, Vinyals & Dean, 2015, arXiv:1503.02531; Clark et al., 2019, arXiv:1907.04829.

  Args:
    student_logits: the student's head outputs, ``{task: logits_BxC}``.
    teacher_logits: the matching teacher's outputs per task (same keys).
    labels: ``{task: labels_B}`` for the hard-label terms, or None (needs ``alpha=1``).
    temperature, alpha: as in ``kd_loss``.
    task_weights: per-task weights of the sum (1 each by default).

  Returns:
    ``(loss, metrics)`` with the weighted sum of per-task ``kd_loss`` and metrics named
    ``"<task>/<metric>"``.
  """
  if set(student_logits) != set(teacher_logits):
    raise ValueError(
        f"Student tasks {sorted(student_logits)} differ from teacher tasks "
        f"{sorted(teacher_logits)}."
    )
  total = 0.0
  metrics = {}
  for task in sorted(student_logits):
    task_labels = None if labels is None else labels[task]
    loss, task_metrics = kd_loss(
        student_logits[task], teacher_logits[task], task_labels,
        temperature=temperature, alpha=alpha,
    )
    weight = 1.0 if task_weights is None else task_weights[task]
    total = total + weight * loss
    metrics[f"{task}/loss"] = loss
    metrics.update({f"{task}/{name}": value for name, value in task_metrics.items()})
  return total, metrics
