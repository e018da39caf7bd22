"""Plot of one held-out sinusoid before and after adaptation."""

import jax
import jax.numpy as jnp
from matplotlib.figure import Figure

from metalm import types
from metalm.data import sinusoid


def adaptation(path, model, learners_by_steps, params, state, key, *, data_config):
  """Writes a PNG of the true function, the K shots and each adapted prediction."""
  function_key, point_key, adapt_key = jax.random.split(key, 3)
  functions = sinusoid.sample_functions(
      function_key, 1, amplitude=data_config.amplitude, phase=data_config.phase
  )
  task = sinusoid.sample_tasks(
      point_key, functions, num_support=data_config.num_support, num_query=1,
      x_range=data_config.x_range,
  )
  grid = jnp.linspace(*data_config.x_range, 200)
  fig = Figure(figsize=(7, 4))
  ax = fig.subplots()
  ax.plot(grid, functions(grid[None])[0], "k-", lw=2, label="true function")
  ax.plot(task.support_x[0, :, 0], task.support_y[0, :, 0], "k^", ms=8,
          label=f"{data_config.num_support} shots")
  for steps, learner in learners_by_steps.items():
    support = types.Batch(task.support_x[0], task.support_y[0])
    task_params, task_state = learner.adapt(params, state, support, adapt_key)
    prediction, _ = model.apply(task_params, task_state, grid[:, None], train=False)
    ax.plot(grid, prediction[:, 0], "--", label=f"after {steps} step(s)")
  ax.set_xlabel("x")
  ax.set_ylabel("y")
  ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
