"""Reptile, batched (Nichol et al. 2018, arXiv:1803.02999)."""


import jax
import jax.numpy as jnp
import optax

from metalm import types
from metalm.meta import base, maml
from metalm.models import functional


def distance_loss(meta_params: types.Params, adapted: types.Params) -> jax.Array:
  """``0.5 * ||meta_params - stop_gradient(adapted)||^2`` summed over leaves.

  Its gradient with respect to ``meta_params`` is ``meta_params - adapted``, so the
  mean over tasks taken by ``base.meta_step`` is the batched Reptile direction.
  """
  diff = optax.tree.sub(meta_params, jax.lax.stop_gradient(adapted))
  return 0.5 * optax.tree.vdot(diff, diff)


def reptile(
    model: functional.ModelFns,
    loss_fn,
    *,
    inner_tx: optax.GradientTransformation | None = None,
    inner_steps: int = 5,
    include_query: bool = False,
) -> base.MetaLearner:
  """Moves the initialization toward the task-adapted weights.

  ``outer_loss`` is ``distance_loss(meta_params, adapted)``, whose gradient is
  ``meta_params - adapted``; with the outer optimizer ``optax.sgd(epsilon)``,
  ``base.meta_step`` applies the batched Reptile update
  ``params += epsilon * mean_t(adapted_t - params)``. Nothing is differentiated
  through the inner loop. The ``loss`` that ``meta_step`` reports is therefore this
  distance; monitor ``query_loss`` (and ``loss_fn``'s metrics) in ``aux.metrics``,
  the loss of the adapted parameters on the query set.

  Args:
    model: the model's pure functions.
    loss_fn: ``loss(out, y) -> (loss, metrics)`` for one set.
    inner_tx: inner optimizer (any optax transformation); SGD with rate 0.01 if None.
    inner_steps: full-batch inner steps.
    include_query: adapt on the support and query sets concatenated, as the paper
      trains on all of a task's data (Reptile needs no support/query split). The
      reported ``query_loss`` is then measured on data the inner loop has seen. When
      False, adapt on the support set only.

  Returns:
    A ``base.MetaLearner`` whose meta-parameters are the model parameters.

  Reference: Nichol, Achiam, Schulman 2018, arXiv:1803.02999.
  """
  # Reptile adapts exactly as MAML does; it only differs in its outer step.
  adapt = maml.maml(model, loss_fn, inner_tx=inner_tx, inner_steps=inner_steps).adapt

  def outer_loss(meta_params, state, task: types.TaskBatch, key):
    adapt_key, query_key = jax.random.split(key)
    batch = task.support
    if include_query:
      batch = types.Batch(
          jnp.concatenate([task.support_x, task.query_x]),
          jnp.concatenate([task.support_y, task.query_y]),
      )
    params, state = adapt(jax.lax.stop_gradient(meta_params), state, batch, adapt_key)
    out, state = functional.predict_query(
        model, params, state, task.support_x, task.query_x, key=query_key)
    query_loss, metrics = loss_fn(out, task.query_y)
    metrics = {**metrics, "query_loss": query_loss}
    return distance_loss(meta_params, params), base.OuterAux(state, metrics)

  return base.MetaLearner(model.init, adapt, outer_loss, base.adapted_predict(model, adapt))
