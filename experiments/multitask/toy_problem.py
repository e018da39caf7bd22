"""The two-objective toy of CAGrad and Nash-MTL: losses, Pareto front, trajectories.

The losses of CAGrad's released ``toy.py`` (Cranial-XIX/CAGrad; Nash-MTL's
``experiments/toy/problem.py`` adds ``scale`` on the first), with ``(x, y) = theta``::

  f1 = log(max(|0.5 (-x - 7) - tanh(-y)|, 5e-6)) + 6
  f2 = log(max(|0.5 (-x + 3) + tanh(-y) + 2|, 5e-6)) + 6
  c1 = max(tanh(0.5 y), 0)          c2 = max(tanh(-0.5 y), 0)
  f1_sq = ((-x + 7)^2 + 0.1 (-y - 8)^2) / 10 - 20
  f2_sq = ((-x - 7)^2 + 0.1 (-y - 8)^2) / 10 - 20
  L1 = scale (f1 c1 + f1_sq c2)     L2 = f2 c1 + f2_sq c2

For ``y > 0`` the losses are the log terms (at least -6.2 each: flat valleys where the
clamp at 5e-6 holds); for ``y < 0`` they are the quadratic bowls centred at
``x = +7`` (task 1) and ``x = -7`` (task 2) times ``tanh(-y/2)``.

The Pareto set (for any ``scale > 0``): a point with ``y < 0`` is Pareto stationary
iff ``w1 grad L1 + w2 grad L2 = 0`` for some ``w`` in the simplex. The x-component
forces ``|x| <= 7`` and (for scale 1) ``w1 = (x + 7) / 14``, and then ``w1 L1 + w2 L2
= tanh(-y/2) (A(x) + 0.01 (y + 8)^2)`` with ``A(x) = (49 - x^2) / 10 - 20``, so

  Pareto set = {(x, y*(x)) : |x| <= 7},  y*(x) = argmin_y tanh(-y/2) (A(x) + 0.01 (y+8)^2)

a slightly bent curve: ``y*(0) = -8.3551`` (the optimum of the mean loss, CAGrad's
``yy = -8.3552``), ``y*(+-7) = -8.4345``. Each of its points is the unique minimizer of
a weighted sum with positive weights (convex in x, unimodal in y), so Pareto optimal;
no other point is stationary for ``y < 0``, and ``(0, y*(0))``, with both losses about
``-15.1`` (times ``scale`` for L1), dominates every point with ``y >= 0`` (where each
loss is at least ``-6.2``, times ``scale``). So the curve is the whole Pareto set.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metalm import mtl
from metalm.mtl import base, step
from metalm.train import multitask, optim

LOWER = 5e-6
# A lower bound of both losses (each >= -20 * scale): losses minus it are positive, so
# balancers that take logarithms (FAMO, GLS, DB-MTL, ...) apply, as FAMO's toy does.
MIN_LOSS = -21.0


def losses(theta, scale: float = 1.0, xp=jnp):
  """``[..., 2]`` losses ``(L1, L2)`` at ``theta [..., 2]`` (``xp``: jnp or np)."""
  x, y = theta[..., 0], theta[..., 1]
  f1 = xp.log(xp.maximum(xp.abs(0.5 * (-x - 7) - xp.tanh(-y)), LOWER)) + 6
  f2 = xp.log(xp.maximum(xp.abs(0.5 * (-x + 3) + xp.tanh(-y) + 2), LOWER)) + 6
  c1 = xp.maximum(xp.tanh(0.5 * y), 0)
  c2 = xp.maximum(xp.tanh(-0.5 * y), 0)
  f1_sq = ((-x + 7) ** 2 + 0.1 * (-y - 8) ** 2) / 10 - 20
  f2_sq = ((-x - 7) ** 2 + 0.1 * (-y - 8) ** 2) / 10 - 20
  return xp.stack([scale * (f1 * c1 + f1_sq * c2), f2 * c1 + f2_sq * c2], axis=-1)


def pareto_y(x) -> np.ndarray:
  """``y*(x)`` of the Pareto set, by golden-section search on ``[-12, -6]`` (float64)."""
  a = (49.0 - np.asarray(x, np.float64) ** 2) / 10.0 - 20.0
  g = lambda y: np.tanh(-y / 2) * (a + 0.01 * (y + 8) ** 2)
  lo, hi = np.full_like(a, -12.0), np.full_like(a, -6.0)
  ratio = (np.sqrt(5.0) - 1) / 2
  for _ in range(80):
    left, right = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    better = g(left) < g(right)
    hi, lo = np.where(better, right, hi), np.where(better, lo, left)
  return (lo + hi) / 2


def distance_to_front(theta) -> np.ndarray:
  """Distance from ``theta [..., 2]`` to the Pareto set ``{(x, y*(x)) : |x| <= 7}``."""
  theta = np.asarray(theta, np.float64)
  xs = np.linspace(-7.0, 7.0, 2801)
  front = np.stack([xs, pareto_y(xs)], axis=-1)
  gaps = np.linalg.norm(theta[..., None, :] - front, axis=-1)
  return gaps.min(axis=-1)


def toy_model(tasks=("task_1", "task_2"), scale: float = 1.0):
  """The toy as a ``MultiTaskModel``: ``theta`` is the shared parameter, no heads.

  ``decode`` outputs each loss minus ``MIN_LOSS`` (same gradients, positive values); the
  task loss functions pass them through.
  """
  def init(key):
    del key
    return {"theta": jnp.zeros((2,), jnp.float32)}, {}

  def encode(params, state, x, *, train, key=None):
    del x, train, key
    return params["theta"], state

  def decode(params, state, rep, *, train, key=None):
    del params, train, key
    values = losses(rep, scale) - MIN_LOSS * jnp.array([scale, 1.0], rep.dtype)
    return {tasks[0]: values[0], tasks[1]: values[1]}, state

  return base.MultiTaskModel(init, encode, decode, tuple(tasks))


def identity_loss(out, y):
  del y
  return out, {}


def trajectories(balancer, tx, starts, num_steps: int, *, scale: float = 1.0,
                 record_every: int = 1, seed: int = 0):
  """``theta`` every ``record_every`` steps from each start: ``[S, 1 + num_steps // r, 2]``.

  One jitted computation: ``lax.scan`` over steps of ``mtl.step.train_step``, ``vmap``
  over the starts.
  """
  model = toy_model(scale=scale)
  loss_fns = {t: identity_loss for t in model.tasks}
  batch = step.MultiTaskBatch(jnp.zeros(()), {t: jnp.zeros(()) for t in model.tasks})
  key = jax.random.key(seed)
  init = multitask.init_fn(  # Sizes states that a first update would (DB-MTL).
      model, balancer, tx,
      lambda s, b: step.train_step(model, balancer, tx, loss_fns, s, b, key), batch)

  def one(start):
    state = init(key)
    params = {"theta": start}
    state = state._replace(params=params, opt_state=tx.init(params))

    def advance(state, k):
      state, _ = step.train_step(model, balancer, tx, loss_fns, state, batch,
                                 jax.random.fold_in(key, k))
      return state, None

    def record(state, chunk):
      state, _ = jax.lax.scan(advance, state, chunk * record_every + jnp.arange(record_every))
      return state, state.params["theta"]

    _, thetas = jax.lax.scan(record, state, jnp.arange(num_steps // record_every))
    return jnp.concatenate([start[None], thetas])

  return jax.jit(jax.vmap(one))(jnp.asarray(starts, jnp.float32))


def run(config, name: str) -> np.ndarray:
  """``[S, R, 2]`` recorded ``theta`` of balancer ``name`` from every start."""
  tx = optim.build(config.optimizer, "config.optimizer")
  if name in config.max_norm:
    tx = optax.chain(optax.clip_by_global_norm(config.max_norm[name]), tx)
  balancer = mtl.build({"name": name, **config.balancers[name]})
  return np.asarray(trajectories(
      balancer, tx, config.starts, config.num_steps, scale=config.scale,
      record_every=config.record_every, seed=config.seed))


def summarize(config, thetas: np.ndarray) -> dict:
  """Final points, their losses and distances to the Pareto set, the starts that fail."""
  final = thetas[:, -1]
  distance = distance_to_front(final)
  on_front = distance <= config.front_tolerance
  return {"final": final.tolist(),
          "losses": losses(final, config.scale, xp=np).tolist(),
          "distance_to_front": distance.tolist(), "on_front": on_front.tolist(),
          "fails_from": [list(s) for s, ok in zip(config.starts, on_front, strict=True)
                         if not ok]}
