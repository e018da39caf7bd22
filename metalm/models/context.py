"""Models conditioned on a task context vector (CAVIA, Zintgraf et al. 2019, arXiv:1810.03642).

A context model holds its context as the parameter ``params["context"]`` (a vector,
initialized to zero), beside the network's own parameters. ``metalm.meta.cavia``
adapts only that entry, from zero, on every task, and meta-learns the rest.

  * ``ContextMLP``: the context is concatenated to the input features (CAVIA's
    regression network).
  * ``ContextConv4``: Conv-4 whose chosen blocks are FiLM-modulated (Perez et al. 2018,
    arXiv:1709.07871) by a linear map of the context (CAVIA's classification network).
  * ``with_context``: the input-concatenation path for any ``ModelFns``.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from metalm.models import functional

CONTEXT = "context"


def concat_context(x: jax.Array, context: jax.Array) -> jax.Array:
  """``[..., D]`` inputs and a ``[K]`` context -> ``[..., D + K]``."""
  context = jnp.broadcast_to(context.astype(x.dtype), x.shape[:-1] + context.shape)
  return jnp.concatenate([x, context], axis=-1)


class ContextMLP(nn.Module):
  """MLP on ``[x, context]`` with ReLU between layers; the output layer is ``"head"``.

  Attributes:
    hidden: widths of the hidden layers, e.g. ``(40, 40)``.
    num_outputs: width of the output layer.
    num_context: size of the context vector.
  """

  hidden: Sequence[int]
  num_outputs: int
  num_context: int = 5

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # No BatchNorm or dropout.
    context = self.param(CONTEXT, nn.initializers.zeros, (self.num_context,))
    x = concat_context(x, context)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_outputs, name="head")(x)


class ConvBlock(nn.Module):
  """conv 3x3 -> BatchNorm -> FiLM(context) -> ReLU -> max-pool 2.

  With ``context=None`` it is ``metalm.models.conv4.ConvBlock``. The FiLM layer
  ``"film"`` maps the context to ``(dgamma, beta)`` and the features become
  ``(1 + dgamma) * h + beta``: identity at a zero context, since Dense biases start
  at zero (CAVIA's code uses ``gamma * h + beta`` with PyTorch's random bias init).
  """

  filters: int

  @nn.compact
  def __call__(self, x, context, train: bool):
    x = nn.Conv(self.filters, (3, 3), padding="SAME")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.0, epsilon=1e-5)(x)
    if context is not None:
      film = nn.Dense(2 * self.filters, name="film")(context)
      dgamma, beta = jnp.split(film.reshape((1,) * (x.ndim - 1) + (-1,)), 2, axis=-1)
      x = (1.0 + dgamma) * x + beta
    x = nn.relu(x)
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


class ContextConv4(nn.Module):
  """Conv-4 with FiLM conditioning on a context vector; inputs are NHWC images.

  Parameter names match ``metalm.models.conv4.Conv4`` plus ``"context"`` and each
  conditioned block's ``"film"``.

  Attributes:
    num_classes: output width (the N of N-way).
    filters: 64 for 28x28 inputs, 32 for 84x84 inputs.
    num_context: size of the context vector (100 in CAVIA's miniImageNet runs).
    film_blocks: indices (0-3) of the FiLM-conditioned blocks; CAVIA uses the third.
  """

  num_classes: int
  filters: int = 64
  num_context: int = 100
  film_blocks: Sequence[int] = (2,)

  @nn.compact
  def __call__(self, x, train: bool = False):
    context = self.param(CONTEXT, nn.initializers.zeros, (self.num_context,))
    for block in range(4):
      x = ConvBlock(self.filters)(x, context if block in self.film_blocks else None, train)
    x = x.reshape(x.shape[:-3] + (-1,))
    return nn.Dense(self.num_classes, name="head")(x)


def with_context(model: functional.ModelFns, num_context: int) -> functional.ModelFns:
  """Adds a zero-initialized ``params["context"]`` concatenated to every input.

  Args:
    model: a model built for inputs of width ``D + num_context`` (e.g.
      ``models.build(config, (1, D + num_context))``).
    num_context: size of the context vector.

  Returns:
    ``ModelFns`` over ``[..., D]`` inputs whose parameters are the model's plus
    ``"context"``.
  """

  def init(key):
    params, state = model.init(key)
    if CONTEXT in params:
      raise ValueError(f"The model already has a {CONTEXT!r} parameter.")
    dtype = jax.tree.leaves(params)[0].dtype
    return {**params, CONTEXT: jnp.zeros((num_context,), dtype)}, state

  def apply(params, state, x, *, train, key=None):
    inner = {k: v for k, v in params.items() if k != CONTEXT}
    return model.apply(inner, state, concat_context(x, params[CONTEXT]), train=train, key=key)

  return functional.ModelFns(init, apply, model.norm)
