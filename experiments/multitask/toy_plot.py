"""Each method's toy trajectories over the contour of the mean loss, one panel each."""

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from experiments.multitask import toy_problem


def grid(path: str, trajectories: dict, config, *, extent: float = 11.0) -> Figure:
  """Writes (and returns) a PNG: panels of ``theta`` paths (one colour per start) on the mean loss.

  Args:
    path: the PNG file.
    trajectories: ``{method: [S, R, 2]}``.
    config: the toy config (``starts``, ``scale``).
    extent: the plotted square is ``[-extent, extent]^2``.
  """
  axis = np.linspace(-extent, extent, 300)
  xx, yy = np.meshgrid(axis, axis)
  mean = toy_problem.losses(np.stack([xx, yy], -1), config.scale, xp=np).mean(-1)
  front_x = np.linspace(-7, 7, 200)
  front_y = toy_problem.pareto_y(front_x)
  names = list(trajectories)
  cols = min(5, len(names))
  rows = -(-len(names) // cols)
  fig = Figure(figsize=(3.2 * cols, 3.2 * rows))
  axes = fig.subplots(rows, cols, squeeze=False)
  colors = colormaps["tab10"](np.arange(len(config.starts)))
  for ax, name in zip(axes.flat, names, strict=False):
    ax.contour(xx, yy, mean, levels=20, cmap="viridis", linewidths=0.7)
    ax.plot(front_x, front_y, color="0.5", linewidth=4, alpha=0.6, zorder=1)
    for path_, color in zip(trajectories[name], colors, strict=True):
      ax.plot(path_[:, 0], path_[:, 1], color=color, linewidth=1.5, zorder=3)
      ax.plot(*path_[0], "o", color="k", markersize=4, zorder=4)
      ax.plot(*path_[-1], "*", color=color, markersize=9, zorder=5)
    ax.set_title(name, fontsize=10)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  fig.suptitle(f"toy ({config.setting}): mean loss, Pareto set in grey", fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  return fig
