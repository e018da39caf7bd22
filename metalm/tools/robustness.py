"""Adversarial attacks (FGSM, PGD; L-infinity and L2), adversarial training, robust accuracy.

An attack is ``attack(objective, x, key) -> x_adv`` where ``objective(x)`` returns the
loss to maximize (a scalar or per-example ``[B]`` losses; their sum is differentiated).
Budgets are per example: every ``x_adv[b]`` lies in the ``epsilon`` ball around ``x[b]``
(norm over all non-batch axes) and, with ``clip``, inside the valid input range. Any
floating input works: images, features or token embeddings (``clip=None``).
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

Attack = Callable[[Callable[[jax.Array], jax.Array], jax.Array, jax.Array], jax.Array]
NORMS = ("linf", "l2")
_TINY = 1e-12


def _per_example_norm(v: jax.Array) -> jax.Array:
  """L2 norm over the non-batch axes, shaped to broadcast against ``v``."""
  axes = tuple(range(1, v.ndim))
  return jnp.sqrt(jnp.sum(v * v, axis=axes, keepdims=True))


def _ascent_direction(grad: jax.Array, norm: str) -> jax.Array:
  """The unit-norm steepest-ascent direction of the given norm."""
  if norm == "linf":
    return jnp.sign(grad)
  return grad / jnp.maximum(_per_example_norm(grad), _TINY)


def project(x_adv, x, *, epsilon: float, norm: str, clip: tuple[float, float] | None):
  """Projects ``x_adv`` onto the ``epsilon`` ball around ``x``, then into ``clip``.

  Clipping after the projection keeps the point inside the ball: with ``x`` in range,
  clipping only moves each coordinate of ``x_adv - x`` towards zero.
  """
  delta = x_adv - x
  if norm == "linf":
    delta = jnp.clip(delta, -epsilon, epsilon)
  else:
    delta = delta * jnp.minimum(1.0, epsilon / jnp.maximum(_per_example_norm(delta), _TINY))
  x_adv = x + delta
  return x_adv if clip is None else jnp.clip(x_adv, clip[0], clip[1])


def _check_norm(norm):
  if norm not in NORMS:
    raise ValueError(f"Unknown norm {norm!r}; choose one of {NORMS}.")


def _ascend(objective):
  return jax.grad(lambda x: jnp.sum(objective(x)))


def fgsm(epsilon: float, *, norm: str = "linf", clip=(0.0, 1.0)) -> Attack:
  """Fast gradient (sign) method: one step of size ``epsilon``.

  Goodfellow, Shlens & Szegedy, 2015, arXiv:1412.6572.

  Args:
    epsilon: radius of the perturbation ball.
    norm: ``"linf"`` (the sign step) or ``"l2"`` (normalized gradient step).
    clip: valid input range ``(low, high)``, or None for unbounded inputs.
  """
  _check_norm(norm)

  def attack(objective, x, key=None):
    del key
    grad = _ascend(objective)(x)
    x_adv = x + epsilon * _ascent_direction(grad, norm)
    return jax.lax.stop_gradient(project(x_adv, x, epsilon=epsilon, norm=norm, clip=clip))

  return attack


def _random_start(key, x, epsilon, norm):
  if norm == "linf":
    return x + jax.random.uniform(key, x.shape, x.dtype, -epsilon, epsilon)
  direction_key, radius_key = jax.random.split(key)
  direction = jax.random.normal(direction_key, x.shape, x.dtype)
  direction = direction / jnp.maximum(_per_example_norm(direction), _TINY)
  dim = x[0].size
  radius_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
  # Uniform in the ball: radius ~ epsilon * U^(1/dim).
  radius = epsilon * jax.random.uniform(radius_key, radius_shape, x.dtype) ** (1.0 / dim)
  return x + radius * direction


def pgd(
    epsilon: float,
    *,
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    clip=(0.0, 1.0),
) -> Attack:
  """Projected gradient descent (ascent on the loss) inside the ``epsilon`` ball.

  Madry et al., 2018, arXiv:1706.06083.

  Args:
    epsilon: radius of the perturbation ball.
    norm: ``"linf"`` or ``"l2"``.
    steps: number of ascent steps (run in ``lax.scan``).
    step_size: size of each step; ``2.5 * epsilon / steps`` by default (Madry et al.).
    random_start: start from a uniform point of the ball (needs a key) instead of ``x``.
    clip: valid input range ``(low, high)``, or None for unbounded inputs.
  """
  _check_norm(norm)
  step_size = 2.5 * epsilon / steps if step_size is None else step_size

  def attack(objective, x, key=None):
    x = jax.lax.stop_gradient(x)
    grad_fn = _ascend(objective)
    x_adv = x
    if random_start:
      if key is None:
        raise ValueError("pgd with random_start=True needs a PRNG key.")
      x_adv = project(_random_start(key, x, epsilon, norm), x, epsilon=epsilon, norm=norm,
                      clip=clip)

    def step(x_adv, _):
      x_adv = x_adv + step_size * _ascent_direction(grad_fn(x_adv), norm)
      return project(x_adv, x, epsilon=epsilon, norm=norm, clip=clip), None

    x_adv, _ = jax.lax.scan(step, x_adv, None, length=steps)
    return jax.lax.stop_gradient(x_adv)

  return attack


def adversarial_loss(loss_fn: Callable[..., jax.Array], attack: Attack, *, has_aux=False):
  """Wraps ``loss_fn(params, x, *args)`` into a loss on attacked inputs.

  Madry et al., 2018, arXiv:1706.06083.

  The returned ``loss(params, x, *args, key)`` finds ``x_adv`` with ``attack`` against the
  current (gradient-stopped) parameters and returns ``loss_fn(params, x_adv, *args)``;
  by Danskin's theorem its parameter gradient is the gradient of the inner maximum.
  With ``has_aux``, ``loss_fn`` returns ``(loss, aux)`` and so does the wrapper.
  """

  def loss(params, x, *args, key):
    frozen = jax.lax.stop_gradient(params)

    def objective(x_):
      out = loss_fn(frozen, x_, *args)
      return out[0] if has_aux else out

    return loss_fn(params, attack(objective, x, key), *args)

  return loss


def robust_accuracy(fn, x, y_B, attack: Attack, key) -> dict[str, jax.Array]:
  """Clean and robust accuracy of ``fn(x) -> logits_BxC`` under ``attack``.

  The attack maximizes the cross-entropy of the integer labels ``y_B``. Robust accuracy
  counts an example as correct only when it is correct both clean and attacked, so it
  never exceeds the clean accuracy.
  """

  def objective(x_):
    return optax.softmax_cross_entropy_with_integer_labels(fn(x_), y_B)

  x_adv = attack(objective, x, key)
  clean_B = jnp.argmax(fn(x), -1) == y_B
  attacked_B = jnp.argmax(fn(x_adv), -1) == y_B
  return {
      "clean_accuracy": jnp.mean(clean_B),
      "robust_accuracy": jnp.mean(clean_B & attacked_B),
  }


def embedding_attack(embed_fn, logits_fn, tokens_BxL, y_B, attack: Attack, key,
                     *, mask_BxL=None) -> dict[str, jax.Array]:
  """Attacks a text model in its token-embedding space; returns accuracies and embeddings.

  Token ids are discrete, so the attack perturbs the embedded sequence instead (Miyato,
  Dai & Goodfellow, 2017, arXiv:1605.07725). Build ``attack`` with ``clip=None``; its
  budget is per example over all ``L * D`` coordinates. Padding positions
  (``mask_BxL`` False) stay exactly as embedded: the model sees only the masked
  perturbation, and masking can only shrink it, so it stays in the ball.

  Args:
    embed_fn: ``embed_fn(tokens_BxL) -> embeddings_BxLxD``.
    logits_fn: ``logits_fn(embeddings_BxLxD, tokens_BxL) -> logits_BxC`` (tokens give the
      padding mask).
    tokens_BxL: token ids.
    y_B: integer labels.
    attack: an ``Attack`` (``fgsm``, ``pgd``) maximizing the cross-entropy.
    key: PRNG key of the attack.
    mask_BxL: True on real tokens; None perturbs every position.

  Returns:
    ``clean_accuracy``, ``robust_accuracy`` (correct both clean and attacked) and
    ``embeddings`` (the perturbed ``[B, L, D]``).
  """
  clean_BxLxD = jax.lax.stop_gradient(embed_fn(tokens_BxL))
  keep_BxLx1 = (jnp.ones(tokens_BxL.shape, clean_BxLxD.dtype) if mask_BxL is None
                else mask_BxL.astype(clean_BxLxD.dtype))[..., None]

  def masked(e_BxLxD):
    return clean_BxLxD + keep_BxLx1 * (e_BxLxD - clean_BxLxD)

  def objective(e_BxLxD):
    logits_BxC = logits_fn(masked(e_BxLxD), tokens_BxL)
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxC, y_B)

  adv_BxLxD = masked(attack(objective, clean_BxLxD, key))
  clean_B = jnp.argmax(logits_fn(clean_BxLxD, tokens_BxL), -1) == y_B
  attacked_B = jnp.argmax(logits_fn(adv_BxLxD, tokens_BxL), -1) == y_B
  return {
      "clean_accuracy": jnp.mean(clean_B),
      "robust_accuracy": jnp.mean(clean_B & attacked_B),
      "embeddings": adv_BxLxD,
  }


def adversarial_queries(learner, attack: Attack):
  """A ``MetaLearner`` whose outer loss is taken on attacked query inputs.

  Adversarial querying (Goldblum, Fowl & Goldstein, 2020, arXiv:1910.00982): adapt on
  the clean support set, attack the query inputs against the adapted model, and
  meta-train on the loss of the attacked queries. The attack maximizes the wrapped
  learner's own outer loss under gradient-stopped meta-parameters and the same key, so
  it targets exactly the adaptation of the final loss (which ``adapt`` recomputes at
  every attack step). ``init``, ``adapt`` and ``predict`` are the wrapped learner's.
  """

  def outer_loss(meta_params, state, task, key):
    frozen = jax.lax.stop_gradient(meta_params)

    def objective(query_x):
      return learner.outer_loss(frozen, state, task._replace(query_x=query_x), key)[0]

    query_x = attack(objective, task.query_x, jax.random.fold_in(key, 1))
    return learner.outer_loss(meta_params, state, task._replace(query_x=query_x), key)

  return learner._replace(outer_loss=outer_loss)
