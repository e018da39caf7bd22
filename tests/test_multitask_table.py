"""Tests for experiments/multitask/table.py (a campaign's results as one table)."""

import json

import pytest

from experiments.multitask import table


def write(folder, name, scores, balancer="equal_weighting", **extra):
  (folder / name).mkdir()
  (folder / name / "results.json").write_text(json.dumps(
      {"balancer": balancer, "scores": scores, "wall_clock_s": 12.0, **extra}))


def test_delta_m_against_single_task_runs_orders_the_rows(tmp_path):
  write(tmp_path, "single_a", {"a": {"acc": 80.0}})
  write(tmp_path, "single_b", {"b": {"err": 10.0}}, higher_is_better={"b": {"err": False}})
  write(tmp_path, "worse", {"a": {"acc": 72.0}, "b": {"err": 11.0}}, "pcgrad",
        higher_is_better={"a": {"acc": True}, "b": {"err": False}})
  write(tmp_path, "better", {"a": {"acc": 84.0}, "b": {"err": 9.0}}, "mgda", rep_grad=True)
  text = table.table(table.load_runs(tmp_path), ["single_a", "single_b"],
                     lower_is_better=("b/err",))
  lines = text.splitlines()
  assert lines[2].startswith("| single task | - | 80.00 | 10.00 | 0 | 0 |")
  # better: a +5%, b -10% error -> delta_m = -(5 + 10) / 2 = -7.5; worse: +10.0.
  assert lines[3].startswith("| better | mgda (rep_grad) | 84.00 | 9.00 | -7.50 | +7.50 | 1.00")
  assert lines[4].startswith("| worse | pcgrad | 72.00 | 11.00 | +10.00 | -10.00 | 2.00")


def test_missing_baseline_names_the_finished_runs(tmp_path):
  write(tmp_path, "run", {"a": {"acc": 1.0}})
  with pytest.raises(SystemExit, match=r"\['single_a'\] have no results.json.*\['run'\]"):
    table.table(table.load_runs(tmp_path), ["single_a"])
  write(tmp_path, "single_b", {"b": {"acc": 1.0}})
  with pytest.raises(SystemExit, match=r"No baseline run trained \['a'\]"):
    table.table(table.load_runs(tmp_path), ["single_b"])
  with pytest.raises(SystemExit, match="--baselines names no run"):
    table.table(table.load_runs(tmp_path), [])
  with pytest.raises(SystemExit, match="No \\*/results.json under"):
    table.load_runs(tmp_path / "run")
