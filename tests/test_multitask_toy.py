"""The CAGrad / Nash-MTL toy: its Pareto set, and which balancers reach it from where.

The long test runs CAGrad's setting as released (100,000 Adam steps from its three
starts): MGDA, CAGrad and Nash-MTL reach the Pareto set from every start; equal
weighting fails from (-8.5, 7.5) and (9, 9), stuck in the flat valleys of y > 0 (CAGrad's
Fig. 1 shows the same two failures).
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.multitask import toy_problem
from experiments.multitask.configs import toy as toy_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def min_norm(jacobian_Tx2):
  """``min_w ||w g_1 + (1 - w) g_2||`` over ``w in [0, 1]`` (two tasks, closed form)."""
  g1, g2 = jacobian_Tx2
  diff = g1 - g2
  w = jnp.clip(jnp.dot(g2, g2 - g1) / jnp.maximum(jnp.dot(diff, diff), 1e-30), 0.0, 1.0)
  return jnp.linalg.norm(w * g1 + (1 - w) * g2)


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_pareto_set_is_where_the_task_gradients_cancel(scale, x64):
  np.testing.assert_allclose(toy_problem.pareto_y(0.0), -8.3551, atol=1e-4)  # CAGrad's yy.
  np.testing.assert_allclose(toy_problem.pareto_y(np.array([-7.0, 7.0])), -8.4345, atol=1e-4)
  xs = np.linspace(-6.9, 6.9, 13)
  front = np.stack([xs, toy_problem.pareto_y(xs)], axis=-1)
  jacobian = jax.vmap(jax.jacobian(lambda t: toy_problem.losses(t, scale)))
  on = jax.vmap(min_norm)(jacobian(jnp.asarray(front)))
  np.testing.assert_allclose(on, 0.0, atol=1e-7)
  off = jax.vmap(min_norm)(jacobian(jnp.asarray(front + np.array([0.0, 0.05]))))
  assert (off > 1e-5).all()
  # No point of a grid dominates a point of the front.
  axis = np.linspace(-11, 11, 221)
  grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
  grid_losses = toy_problem.losses(grid, scale, xp=np)
  for point in toy_problem.losses(front, scale, xp=np):
    dominated = (grid_losses <= point).all(-1) & (grid_losses < point - 1e-9).any(-1)
    assert not dominated.any()


def test_distance_to_front():
  assert toy_problem.distance_to_front(np.array([0.0, -8.3551])) < 1e-4
  np.testing.assert_allclose(toy_problem.distance_to_front(np.array([9.0, -8.4345])), 2.0,
                             atol=1e-3)


def test_toy_smoke_writes_results_and_a_plot(tmp_path, user_env):
  done = subprocess.run(
      [sys.executable, "-m", "experiments.multitask.toy",
       "--config=experiments/multitask/configs/toy.py:nash_mtl,smoke", f"--workdir={tmp_path}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600, env=user_env)
  assert done.returncode == 0, done.stderr[-3000:]
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["setting"] == "nash_mtl" and len(results["starts"]) == 5
  assert set(results["methods"]) == set(toy_config.SMOKE_BALANCERS)
  for method in results["methods"].values():
    assert np.isfinite(method["final"]).all() and len(method["on_front"]) == 5
  assert os.path.getsize(tmp_path / "trajectories.png") > 20_000


@pytest.mark.slow
def test_cagrad_setting_who_reaches_the_pareto_set():
  config = toy_config.get_config("cagrad")
  reached = {}
  for name in ("mgda", "cagrad", "nash_mtl", "equal_weighting"):
    summary = toy_problem.summarize(config, toy_problem.run(config, name))
    reached[name] = summary["on_front"]
    if name == "equal_weighting":
      assert summary["fails_from"] == [[-8.5, 7.5], [9.0, 9.0]]
      # From (-8.5, -5) it reaches the optimum of the mean loss.
      np.testing.assert_allclose(summary["final"][1], [0.0, -8.3551], atol=0.02)
    else:
      assert all(summary["on_front"]), (name, summary)
  assert reached["equal_weighting"] == [False, True, False]


@pytest.mark.slow
def test_five_starts_mgda_cagrad_nash_reach_the_pareto_set_equal_weighting_does_not():
  """CAGrad's functions from Nash-MTL's five starts, Adam 1e-3."""
  config = toy_config.get_config("five_starts")
  assert config.scale == 1.0 and len(config.starts) == 5
  for name in ("mgda", "cagrad", "nash_mtl"):
    summary = toy_problem.summarize(config, toy_problem.run(config, name))
    assert all(summary["on_front"]), (name, summary)
    np.testing.assert_allclose(np.asarray(summary["final"])[:, 1], -8.355, atol=0.05)
  summary = toy_problem.summarize(config, toy_problem.run(config, "equal_weighting"))
  assert summary["fails_from"] == [[-8.5, 7.5], [9.0, 9.0]]
