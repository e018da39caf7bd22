"""Prototypical networks (Snell et al. 2017, arXiv:1703.05175)."""

import jax
import jax.numpy as jnp

from metalm import losses, types
from metalm.meta import base
from metalm.models import functional

DISTANCES = ("squared_euclidean",)


def prototypes(emb_SxD: jax.Array, labels_S: jax.Array, num_ways: int) -> jax.Array:
  """Mean support embedding of each class.

  Args:
    emb_SxD: support embeddings.
    labels_S: integer labels in ``[0, num_ways)``; every class present at least once.
    num_ways: the N of N-way.

  Returns:
    ``[N, D]`` class means.
  """
  onehot_SxC = jax.nn.one_hot(labels_S, num_ways, dtype=emb_SxD.dtype)
  counts_C = jnp.sum(onehot_SxC, axis=0)
  return (onehot_SxC.T @ emb_SxD) / counts_C[:, None]


def squared_distances(a_QxD: jax.Array, b_CxD: jax.Array) -> jax.Array:
  """``[Q, C]`` squared Euclidean distances, as ``|a|^2 - 2 a.b + |b|^2`` (a GEMM)."""
  sq_a_Q = jnp.sum(jnp.square(a_QxD), axis=-1)
  sq_b_C = jnp.sum(jnp.square(b_CxD), axis=-1)
  return sq_a_Q[:, None] - 2 * (a_QxD @ b_CxD.T) + sq_b_C[None, :]


def protonet(
    model: functional.ModelFns, *, num_ways: int, distance: str = "squared_euclidean"
) -> base.MetaLearner:
  """Prototypical networks: logits are negative squared distances to class means.

  ``meta_params`` are the embedding model's parameters (a model built with
  ``num_classes=0`` returns ``[B, D]`` features). ``adapt`` returns
  ``{"params": meta_params, "prototypes": [N, D]}`` and the state after the support
  pass; the support is embedded with ``train=True`` and the query as
  ``functional.predict_query`` does, so the BatchNorm mode is respected.

  Args:
    model: the embedding model's pure functions; outputs ``[B, D]``.
    num_ways: the number of classes N of each task (labels in ``[0, N)``).
    distance: only ``"squared_euclidean"`` (the paper's choice).

  Returns:
    A ``base.MetaLearner`` whose metrics hold the query ``accuracy``.

  Reference: Snell, Swersky, Zemel 2017, arXiv:1703.05175.
  """
  if distance not in DISTANCES:
    raise ValueError(f"Unknown distance {distance!r}; choose one of {DISTANCES}.")

  def adapt(meta_params, state, support: types.Batch, key):
    emb_SxD, state = model.apply(meta_params, state, support.x, train=True, key=key)
    protos_CxD = prototypes(emb_SxD, support.y, num_ways)
    return {"params": meta_params, "prototypes": protos_CxD}, state

  def predict(meta_params, state, support: types.Batch, query_x, key):
    support_key, query_key = jax.random.split(key)
    task_params, state = adapt(meta_params, state, support, support_key)
    emb_QxD, state = functional.predict_query(
        model, meta_params, state, support.x, query_x, key=query_key
    )
    return -squared_distances(emb_QxD, task_params["prototypes"]), state

  outer_loss = base.query_loss(predict, losses.cross_entropy)
  return base.MetaLearner(model.init, adapt, outer_loss, predict)
