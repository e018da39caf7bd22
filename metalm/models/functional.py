"""The one boundary between Flax modules and pure JAX.

Everything outside ``metalm.models`` sees a model as ``ModelFns``: an ``init`` that
makes explicit ``(params, state)`` pytrees and a pure ``apply`` over them.
"""

from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from metalm import types

# How BatchNorm layers normalize inside a task (recorded with every result):
#   "none":          the model has no BatchNorm.
#   "transductive":  every set is normalized by its own batch statistics, support and
#                    query alike (reference MAML; query examples see each other).
#   "support":       per-task statistics of the support set normalize the query set,
#                    so query examples never influence each other or the support set.
NORM_MODES = ("none", "transductive", "support")


class ModelFns(NamedTuple):
  """A model as pure functions over explicit pytrees.

  Attributes:
    init: ``init(key) -> (params, state)``.
    apply: ``apply(params, state, x, *, train, key=None) -> (out, state)``; with
      ``train=True`` BatchNorm uses the statistics of ``x`` and returns them in
      ``state``; with ``train=False`` it normalizes by the statistics in ``state``.
    norm: one of ``NORM_MODES``.

  Models in ``metalm.models`` name their output layer ``"head"`` (``params["head"]``),
  the part ANIL adapts and BOIL freezes.
  """

  init: Callable[[types.PRNGKey], tuple[types.Params, types.ModelState]]
  apply: Callable[..., tuple[jax.Array, types.ModelState]]
  norm: str = "none"


def from_linen(
    module: nn.Module, example_shape: Sequence[int], *, norm: str = "none"
) -> ModelFns:
  """Wraps a Linen module whose ``__call__(x, train)`` returns the model output.

  Args:
    module: the Flax module. Collections other than ``params`` (e.g.
      ``batch_stats``) become ``state``; ``dropout`` is the only RNG stream.
    example_shape: shape of one input batch used to create the parameters.
    norm: BatchNorm mode, one of ``NORM_MODES``.
  """
  if norm not in NORM_MODES:
    raise ValueError(f"Unknown norm mode {norm!r}; choose one of {NORM_MODES}.")

  def init(key):
    params_key, dropout_key = jax.random.split(key)
    variables = module.init(
        {"params": params_key, "dropout": dropout_key},
        jnp.zeros(example_shape, jnp.float32),
        train=False,
    )
    variables = dict(variables)
    params = variables.pop("params")
    return params, variables

  def apply(params, state, x, *, train: bool, key=None):
    rngs = {} if key is None else {"dropout": key}
    variables = {"params": params, **state}
    if train and state:
      out, new_state = module.apply(
          variables, x, train=True, rngs=rngs, mutable=list(state)
      )
      return out, dict(new_state)
    return module.apply(variables, x, train=train, rngs=rngs), state

  return ModelFns(init, apply, norm)


def predict_query(
    model: ModelFns,
    params: types.Params,
    state: types.ModelState,
    support_x: jax.Array,
    query_x: jax.Array,
    *,
    key: Any = None,
) -> tuple[jax.Array, types.ModelState]:
  """Outputs on a task's query set under the model's BatchNorm mode.

  Returns:
    ``(out, state)`` where ``state`` holds the statistics the query was normalized by.
  """
  if model.norm == "support":
    _, support_state = model.apply(params, state, support_x, train=True, key=key)
    return model.apply(params, support_state, query_x, train=False, key=key)
  if model.norm == "transductive":
    return model.apply(params, state, query_x, train=True, key=key)
  return model.apply(params, state, query_x, train=False, key=key)
