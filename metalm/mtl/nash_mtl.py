"""Nash-MTL: the Nash bargaining solution among the tasks."""

import jax.numpy as jnp

from metalm.mtl import base, fairgrad, options


def bargaining_weights(gram_TxT, *, max_iters: int = 60):
  """The ``alpha > 0`` with ``(G_n alpha)_t = 1 / alpha_t``, ``G_n = G / ||G||_F``.

  The Frobenius normalization is the official code's; the equation is solved exactly by
  Newton's method on ``alpha^T G_n alpha / 2 - sum_t log alpha_t`` (``fairgrad.fair_weights``
  with ``alpha = 1``) instead of the paper's sequence of convex (cvxpy) approximations.
  """
  frobenius = jnp.sqrt(jnp.sum(gram_TxT**2))
  return fairgrad.fair_weights(gram_TxT / jnp.where(frobenius > 0, frobenius, 1.0), 1.0,
                               max_iters=max_iters)


def nash_mtl(*, max_iters: int = 60) -> base.GradBalancer:
  """Multi-task learning as a bargaining game.

  The direction ``d = sum_t alpha_t g_t`` is the Nash bargaining solution: it maximizes
  ``sum_t log <g_t, d>``, so ``<g_t, d> = 1 / alpha_t`` for every task. The official
  options compose: ``max_norm`` is ``optax.clip_by_global_norm`` in the optimizer chain;
  ``update_weights_every`` is ``options.every_n(nash_mtl(), n)``.

  Args:
    max_iters: cap on Newton steps.

  Returns:
    A ``base.GradBalancer`` built by ``options.weighted`` (state ``weights_T``: ``alpha``).

  Navon et al. 2022, Multi-Task Learning as a Bargaining Game, arXiv 2202.01017.
  """

  def weights_fn(gram_TxT, state, *, losses_T, key):
    del losses_T, key
    return bargaining_weights(gram_TxT, max_iters=max_iters), state

  return options.weighted(weights_fn)
