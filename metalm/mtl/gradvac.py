"""GradVac: align each pair of task gradients to an EMA target cosine similarity."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from metalm.mtl import base


class GradVacState(NamedTuple):
  targets: Any  # EMA target cosines: [T, T], or a pytree of [T, T] (one per leaf).


def vaccinate(gram_TxT, targets_TxT, orders_TxT):
  """Coefficients ``C_TxT`` of ``g_i^vac = sum_k C[i, k] g_k`` and the cosines met.

  Row ``i`` visits the other tasks ``j`` in the order ``orders_TxT[i]``. When
  ``phi = cos(g_i^vac, g_j)`` is below the target ``phi_hat``, it adds
  ``||g_i^vac|| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2))
  / (||g_j|| sqrt(1 - phi_hat^2)) g_j``, which raises the cosine to ``phi_hat``.

  Returns:
    ``(coeffs_TxT, cosines_TxT)``: ``cosines_TxT[i, j]`` is ``phi`` when ``j`` was visited.
  """
  num_tasks = gram_TxT.shape[0]
  eye_TxT = jnp.eye(num_tasks, dtype=gram_TxT.dtype)
  norms_T = jnp.sqrt(jnp.maximum(jnp.diag(gram_TxT), 0.0))

  def row(i, order_T):
    def visit(coef_T, j):
      norm_i = jnp.sqrt(jnp.maximum(coef_T @ gram_TxT @ coef_T, 0.0))
      phi = coef_T @ gram_TxT[:, j] / (norm_i * norms_T[j] + 1e-8)
      target = targets_TxT[i, j]
      sin_phi = jnp.sqrt(jnp.maximum(1.0 - phi**2, 0.0))
      sin_target = jnp.sqrt(jnp.maximum(1.0 - target**2, 0.0))
      scale = norm_i * (target * sin_phi - phi * sin_target) / (norms_T[j] * sin_target + 1e-8)
      coef_T = coef_T + jnp.where((j != i) & (phi < target), scale, 0.0) * eye_TxT[j]
      return coef_T, phi

    coef_T, phis_T = jax.lax.scan(visit, eye_TxT[i], order_T)
    return coef_T, jnp.zeros_like(phis_T).at[order_T].set(phis_T)

  return jax.vmap(row)(jnp.arange(num_tasks), orders_TxT)


def gradvac(beta: float = 0.01, *, params_like=None) -> base.GradBalancer:
  """Gradient Vaccine: PCGrad generalized to adaptive, EMA-tracked similarity goals.

  For each task ``i`` and the others ``j`` in a random order, the running gradient of
  ``i`` is moved toward ``g_j`` until their cosine reaches the target
  ``phi_hat_ij``; then ``phi_hat_ij <- (1 - beta) phi_hat_ij + beta phi_ij`` with the
  cosine ``phi_ij`` met before the move. The direction is the sum of the vaccinated
  gradients. All maths runs on the Gram matrix (leafwise), never on ravelled parameters.

  Args:
    beta: EMA rate of the targets (small, as in the paper; LibMTL defaults to 0.5).
    params_like: a pytree with the structure of the shared parameters (any leaves, e.g. the
      parameters themselves). When given, each leaf has its own Gram matrix and targets
      (the paper's per-layer granularity); when None, one for the whole model.

  Returns:
    A ``base.GradBalancer`` with state ``GradVacState``; its update needs ``key``.

  Wang et al. 2021, Gradient Vaccine: Investigating and Improving Multi-task Optimization in
  Massively Multilingual Models, arXiv 2010.05874.
  """

  def init(num_tasks):
    zeros_TxT = jnp.zeros((num_tasks, num_tasks))
    if params_like is None:
      return GradVacState(zeros_TxT)
    return GradVacState(jax.tree.map(lambda _: zeros_TxT, params_like))

  def update(grads_T, state, *, losses_T, key):
    del losses_T
    num_tasks = jax.tree.leaves(grads_T)[0].shape[0]
    keys = jax.random.split(key, num_tasks)
    orders_TxT = jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(keys)

    def apply(grams_TxT, targets_TxT):
      coeffs_TxT, cosines_TxT = vaccinate(grams_TxT, targets_TxT.astype(grams_TxT.dtype),
                                          orders_TxT)
      ema_TxT = (1.0 - beta) * targets_TxT + beta * cosines_TxT.astype(targets_TxT.dtype)
      off_TxT = ~jnp.eye(num_tasks, dtype=bool)
      return coeffs_TxT.sum(axis=0), jnp.where(off_TxT, ema_TxT, targets_TxT)

    if params_like is None:
      weights_T, targets = apply(base.gram(grads_T), state.targets)
      return base.combine(weights_T, grads_T), GradVacState(targets)
    leaves, treedef = jax.tree.flatten(grads_T)
    out = [apply(base.gram(g), t) for g, t in
           zip(leaves, treedef.flatten_up_to(state.targets), strict=True)]
    direction = [base.combine(w_T, g) for (w_T, _), g in zip(out, leaves, strict=True)]
    return (jax.tree.unflatten(treedef, direction),
            GradVacState(jax.tree.unflatten(treedef, [t for _, t in out])))

  return base.GradBalancer(init, update)
