"""Gradient attributions for any differentiable ``fn(x) -> logits_BxC``.

After few-shot adaptation, close over the task parameters:
``fn = lambda x: model.apply(task_params, state, x, train=False)[0]``.
Attributions have the shape of ``x``; examples are assumed independent (no batch
statistics in ``fn``), so one backward pass of the summed target logits gives every
example's gradient.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

from metalm import types
from metalm.models import functional

Fn = Callable[[jax.Array], jax.Array]


def _target_score(fn: Fn, target_B: jax.Array):
  """``x -> sum_b fn(x)[b, target_b]``: its gradient is every example's own gradient."""

  def score(x):
    logits_BxC = fn(x)
    picked_B = jnp.take_along_axis(logits_BxC, target_B[:, None], axis=-1)[:, 0]
    return jnp.sum(picked_B)

  return score


def saliency(fn: Fn, x: jax.Array, target_B: jax.Array) -> jax.Array:
  """Vanilla gradient saliency: d logit_target / d x.

  Simonyan, Vedaldi & Zisserman, 2013, arXiv:1312.6034.

  Args:
    fn: ``fn(x) -> logits [B, C]``.
    x: inputs ``[B, ...]`` (images, features or token embeddings).
    target_B: integer class whose logit is explained, per example.

  Returns:
    Gradients with the shape of ``x``.
  """
  return jax.grad(_target_score(fn, target_B))(x)


def gradient_x_input(fn: Fn, x: jax.Array, target_B: jax.Array) -> jax.Array:
  """Gradient times input (exact for linear models: ``w * x``).

  Shrikumar et al., 2016, arXiv:1605.01713.
  """
  return saliency(fn, x, target_B) * x


def path_weights(steps: int, method: str = "trapezoid"):
  """Interpolation points ``alpha_P`` in [0, 1] and quadrature weights ``weight_P``."""
  if method == "trapezoid":
    alpha_P = jnp.linspace(0.0, 1.0, steps + 1)
    weight_P = jnp.full((steps + 1,), 1.0 / steps).at[jnp.array([0, steps])].set(0.5 / steps)
  elif method == "riemann":  # Midpoint rule.
    alpha_P = (jnp.arange(steps, dtype=jnp.float32) + 0.5) / steps
    weight_P = jnp.full((steps,), 1.0 / steps)
  else:
    raise ValueError(f"Unknown integration method {method!r}; use 'trapezoid' or 'riemann'.")
  return alpha_P, weight_P


def integrated_gradients(
    fn: Fn,
    x: jax.Array,
    target_B: jax.Array,
    *,
    baseline: jax.Array | None = None,
    steps: int = 50,
    method: str = "trapezoid",
) -> jax.Array:
  """Integrated gradients along the straight path from ``baseline`` to ``x``.

  Sundararajan, Taly & Yan, 2017, arXiv:1703.01365.

  Completeness: attributions of an example sum to
  ``f(x)[target] - f(baseline)[target]`` up to the quadrature error of ``steps``.

  Args:
    fn: ``fn(x) -> logits [B, C]``.
    x: inputs ``[B, ...]``.
    target_B: integer class per example.
    baseline: same shape as ``x`` (or broadcastable); zeros by default.
    steps: number of quadrature intervals.
    method: ``"trapezoid"`` (``steps + 1`` points) or ``"riemann"`` (midpoints).

  Returns:
    Attributions with the shape of ``x``.
  """
  baseline = jnp.zeros_like(x) if baseline is None else jnp.broadcast_to(baseline, x.shape)
  alpha_P, weight_P = path_weights(steps, method)
  alpha_P = alpha_P.astype(x.dtype)
  grad_fn = jax.grad(_target_score(fn, target_B))

  def point_grad(alpha):
    return grad_fn(baseline + alpha * (x - baseline))

  grads_P = jax.vmap(point_grad)(alpha_P)  # [P, B, ...]
  mean_grad = jnp.tensordot(weight_P.astype(x.dtype), grads_P, axes=1)
  return (x - baseline) * mean_grad


def smoothgrad(
    fn: Fn,
    x: jax.Array,
    target_B: jax.Array,
    *,
    key: jax.Array,
    noise_level: float = 0.15,
    samples: int = 25,
    attribution: Callable[..., jax.Array] = saliency,
) -> jax.Array:
  """SmoothGrad: an attribution averaged over Gaussian-noised copies of ``x``.

  Smilkov et al., 2017, arXiv:1706.03825.

  Args:
    fn: ``fn(x) -> logits [B, C]``.
    x: inputs ``[B, ...]``.
    target_B: integer class per example.
    key: PRNG key for the noise.
    noise_level: noise standard deviation as a fraction of each example's value range
      (``max - min``), as in the paper; 0 gives ``attribution`` itself.
    samples: number of noisy copies (vmapped).
    attribution: the attribution to smooth (``saliency``, ``gradient_x_input``, ...).

  Returns:
    Averaged attributions with the shape of ``x``.
  """
  reduce_axes = tuple(range(1, x.ndim))
  span = jnp.max(x, reduce_axes, keepdims=True) - jnp.min(x, reduce_axes, keepdims=True)
  stddev = noise_level * span

  def one(sample_key):
    noise = jax.random.normal(sample_key, x.shape, x.dtype)
    return attribution(fn, x + stddev * noise, target_B)

  return jnp.mean(jax.vmap(one)(jax.random.split(key, samples)), axis=0)


def adapted_saliency(
    learner: Any,
    model: functional.ModelFns,
    meta_params: types.Params,
    state: types.ModelState,
    support: types.Batch,
    query_x: jax.Array,
    target_B: jax.Array,
    key: jax.Array,
    *,
    method: Callable[..., jax.Array] = saliency,
) -> tuple[jax.Array, jax.Array]:
  """Attributions of a meta-learned model before and after adapting to one task.

  ``before`` explains ``model`` under the meta-parameters; ``after`` explains it under the
  task parameters of ``learner.adapt`` (learners whose ``adapt`` returns model parameters:
  MAML, ANIL, Meta-SGD, ...). Keys are split as in ``base.adapted_predict``, so ``after``
  explains exactly what ``learner.predict`` outputs. Query examples must be independent
  (no transductive BatchNorm).

  Args:
    learner: a ``base.MetaLearner``.
    model: the model the learner adapts.
    meta_params, state: meta-parameters and model state.
    support: the task's support set.
    query_x: inputs to explain ``[B, ...]``.
    target_B: explained class per example.
    key: PRNG key of the adaptation (as given to ``learner.predict``).
    method: ``method(fn, x, target_B)``: ``saliency``, ``gradient_x_input``, or a
      ``functools.partial`` of ``integrated_gradients`` / ``smoothgrad``.

  Returns:
    ``(before, after)``, each with the shape of ``query_x``.
  """
  adapt_key, query_key = jax.random.split(key)

  def fn(params, state):
    return lambda x: functional.predict_query(model, params, state, support.x, x,
                                              key=query_key)[0]

  task_params, task_state = learner.adapt(meta_params, state, support, adapt_key)
  before = method(fn(meta_params, state), query_x, target_B)
  return before, method(fn(task_params, task_state), query_x, target_B)
