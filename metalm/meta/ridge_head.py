"""R2-D2: a closed-form ridge regression head (Bertinetto et al. 2019, arXiv:1805.08136)."""

import jax
import jax.numpy as jnp
import numpy as np

from metalm import losses, types
from metalm.meta import base
from metalm.models import functional

# Gram matrices feed a linear solve: keep full float32 accuracy on GPUs/TPUs, whose
# default matmul precision (TF32 / bfloat16 passes) would otherwise perturb them.
_PRECISION = jax.lax.Precision.HIGHEST


def ridge_weights(x_SxD: jax.Array, y_SxC: jax.Array, lam: jax.Array) -> jax.Array:
  """Ridge regression ``argmin_W |X W - Y|^2 + lam |W|^2``.

  Solved through the smaller of the two Gram matrices: with ``S <= D`` by the
  Woodbury identity ``W = X^T (X X^T + lam I_S)^-1 Y`` (an S x S solve), otherwise by
  the normal equations ``W = (X^T X + lam I_D)^-1 X^T Y``. Both use a Cholesky factor.

  Args:
    x_SxD: support embeddings.
    y_SxC: regression targets (one-hot labels).
    lam: positive scalar regularization strength.

  Returns:
    ``[D, C]`` weights.

  Reference: Bertinetto, Henriques, Torr, Vedaldi 2019, arXiv:1805.08136, Eq. 3-4.
  """
  num_support, dim = x_SxD.shape
  if num_support <= dim:
    gram_SxS = jnp.matmul(x_SxD, x_SxD.T, precision=_PRECISION)
    reg_SxS = gram_SxS + lam * jnp.eye(num_support, dtype=x_SxD.dtype)
    alpha_SxC = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(reg_SxS), y_SxC)
    return jnp.matmul(x_SxD.T, alpha_SxC, precision=_PRECISION)
  gram_DxD = jnp.matmul(x_SxD.T, x_SxD, precision=_PRECISION)
  reg_DxD = gram_DxD + lam * jnp.eye(dim, dtype=x_SxD.dtype)
  xty_DxC = jnp.matmul(x_SxD.T, y_SxC, precision=_PRECISION)
  return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(reg_DxD), xty_DxC)


def r2d2(
    model: functional.ModelFns,
    *,
    num_ways: int,
    init_lambda: float = 1.0,
    init_scale: float = 1.0,
    init_bias: float = 0.0,
) -> base.MetaLearner:
  """Ridge regression from support embeddings to one-hot labels, in closed form.

  ``meta_params = {"params": <model params>, "head": {"log_lambda", "scale",
  "bias"}}`` (float32 scalars). ``adapt`` embeds the support (``train=True``) and
  returns ``{"params", "head", "weights": [D, N]}``; query logits are
  ``scale * (X_q W) + bias`` with the query embedded as ``functional.predict_query``
  does. A scalar ``bias`` shifts every logit equally, so under softmax
  cross-entropy its gradient is zero; it is kept for parity with the paper.

  Args:
    model: the embedding model's pure functions; outputs ``[B, D]``.
    num_ways: the number of classes N of each task (labels in ``[0, N)``).
    init_lambda: initial ridge strength (learned as ``log_lambda``).
    init_scale: initial logit scale.
    init_bias: initial logit bias.

  Returns:
    A ``base.MetaLearner`` whose metrics hold ``accuracy``, ``ridge_lambda`` and
    ``logit_scale``.

  Reference: Bertinetto, Henriques, Torr, Vedaldi 2019, arXiv:1805.08136.
  """
  if init_lambda <= 0:
    raise ValueError(f"init_lambda must be positive, got {init_lambda}.")

  def init(key):
    params, state = model.init(key)
    head = {
        "log_lambda": jnp.asarray(np.log(init_lambda), jnp.float32),
        "scale": jnp.asarray(init_scale, jnp.float32),
        "bias": jnp.asarray(init_bias, jnp.float32),
    }
    return {"params": params, "head": head}, state

  def adapt(meta_params, state, support: types.Batch, key):
    params, head = meta_params["params"], meta_params["head"]
    emb_SxD, state = model.apply(params, state, support.x, train=True, key=key)
    onehot_SxC = jax.nn.one_hot(support.y, num_ways, dtype=emb_SxD.dtype)
    lam = jnp.exp(head["log_lambda"]).astype(emb_SxD.dtype)
    weights_DxC = ridge_weights(emb_SxD, onehot_SxC, lam)
    return {"params": params, "head": head, "weights": weights_DxC}, state

  def query_logits(task_params, state, support_x, query_x, key):
    emb_QxD, state = functional.predict_query(
        model, task_params["params"], state, support_x, query_x, key=key
    )
    head = task_params["head"]
    scale, bias = (head[k].astype(emb_QxD.dtype) for k in ("scale", "bias"))
    logits_QxC = scale * jnp.matmul(emb_QxD, task_params["weights"], precision=_PRECISION)
    return logits_QxC + bias, state

  def predict(meta_params, state, support: types.Batch, query_x, key):
    support_key, query_key = jax.random.split(key)
    task_params, state = adapt(meta_params, state, support, support_key)
    return query_logits(task_params, state, support.x, query_x, query_key)

  def outer_loss(meta_params, state, task: types.TaskBatch, key):
    support_key, query_key = jax.random.split(key)
    task_params, state = adapt(meta_params, state, task.support, support_key)
    logits_QxC, state = query_logits(
        task_params, state, task.support_x, task.query_x, query_key)
    loss, metrics = losses.cross_entropy(logits_QxC, task.query_y)
    head = task_params["head"]
    metrics = {**metrics, "ridge_lambda": jnp.exp(head["log_lambda"]),
               "logit_scale": head["scale"]}
    return loss, base.OuterAux(state, metrics)

  return base.MetaLearner(init, adapt, outer_loss, predict)
