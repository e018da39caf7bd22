"""Dynamic weight average (DWA): weights from the rate of loss decrease."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from metalm.mtl import base


class DWAState(NamedTuple):
  epoch_sum_T: jax.Array  # Sum of the losses seen in the current epoch.
  count: jax.Array  # Updates in the current epoch.
  last_T: jax.Array  # Mean loss of the last complete epoch.
  before_last_T: jax.Array  # Mean loss of the epoch before it.
  epochs: jax.Array  # Complete epochs so far.


def dwa(temperature: float = 2.0, steps_per_epoch: int = 1) -> base.LossBalancer:
  """Weights ``T softmax(r / temperature)`` with ``r_t = L_t(e-1) / L_t(e-2)``.

  ``L_t(e)`` is the mean training loss of epoch ``e``, kept in the state; weights are 1
  until two epochs are complete. With ``steps_per_epoch=1`` an epoch is one update.

  Liu et al. 2019, End-to-End Multi-Task Learning with Attention, arXiv 1803.10704.
  """

  def init(num_tasks):
    def zeros_T():  # Distinct buffers: the training step donates its state.
      return jnp.zeros((num_tasks,), jnp.float32)
    zero = jnp.zeros((), jnp.int32)
    return DWAState(zeros_T(), zero, zeros_T(), zeros_T(), jnp.zeros((), jnp.int32))

  def update(losses_T, state, *, key=None):
    del key
    num_tasks = losses_T.shape[0]
    ratio_T = state.last_T / jnp.where(state.epochs >= 2, state.before_last_T, 1.0)
    weights_T = jnp.where(
        state.epochs >= 2, num_tasks * jax.nn.softmax(ratio_T / temperature), 1.0)
    epoch_sum_T = state.epoch_sum_T + jax.lax.stop_gradient(losses_T).astype(jnp.float32)
    count = state.count + 1
    done = count == steps_per_epoch
    new = DWAState(
        jnp.zeros_like(epoch_sum_T), jnp.zeros_like(count), epoch_sum_T / count.astype(jnp.float32),
        state.last_T, state.epochs + 1)
    ongoing = DWAState(epoch_sum_T, count, state.last_T, state.before_last_T, state.epochs)
    state = jax.tree.map(lambda a, b: jnp.where(done, a, b), new, ongoing)
    return weights_T, state

  return base.LossBalancer(init, update)
