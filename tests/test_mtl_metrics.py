"""Multitask summaries on hand-worked numbers: delta_m, delta_p, mean rank."""

import pytest

from metalm.eval import multitask

HIGHER = {"seg": {"miou": True, "pix_acc": True}, "depth": {"abs_err": False}}
BASE = {"seg": {"miou": 40.0, "pix_acc": 50.0}, "depth": {"abs_err": 0.5}}
# By hand: miou +10%, pix_acc -10%, abs_err 0.5 -> 0.4 is a 20% gain.
RESULT = {"seg": {"miou": 44.0, "pix_acc": 45.0}, "depth": {"abs_err": 0.4}}


def test_relative_improvements_by_hand():
  changes = multitask.relative_improvements(RESULT, BASE, HIGHER)
  assert changes["seg"] == {"miou": pytest.approx(10.0), "pix_acc": pytest.approx(-10.0)}
  assert changes["depth"]["abs_err"] == pytest.approx(20.0)


def test_delta_m_by_hand():
  # -(10 - 10 + 20) / 3: a gain, so negative.
  assert multitask.delta_m(RESULT, BASE, HIGHER) == pytest.approx(-20.0 / 3.0)


def test_delta_p_by_hand():
  # seg: (10 - 10) / 2 = 0; depth: 20; mean over the two tasks: 10, positive for a gain.
  assert multitask.delta_p(RESULT, BASE, HIGHER) == pytest.approx(10.0)


def test_delta_p_matches_libmtl_docstring_example():
  # LibMTL count_improvement({'A': [96, 98], 'B': [0.2]}, {'A': [93, 99], 'B': [0.5]},
  # weight={'A': [1, 0], 'B': [1]}) = ((-3/96 - 1/98) / 2 + 1.5) / 2, as a fraction.
  higher = {"A": {"a0": True, "a1": False}, "B": {"b0": True}}
  base = {"A": {"a0": 96.0, "a1": 98.0}, "B": {"b0": 0.2}}
  new = {"A": {"a0": 93.0, "a1": 99.0}, "B": {"b0": 0.5}}
  expected = 100 * ((-3 / 96 - 1 / 98) / 2 + 1.5) / 2
  assert multitask.delta_p(new, base, higher) == pytest.approx(expected)
  assert expected == pytest.approx(73.9636, abs=1e-4)


def test_identical_results_give_zero():
  assert multitask.delta_m(BASE, BASE, HIGHER) == 0.0
  assert multitask.delta_p(BASE, BASE, HIGHER) == 0.0


def test_sign_conventions():
  better = {"seg": {"miou": 41.0, "pix_acc": 51.0}, "depth": {"abs_err": 0.49}}
  worse = {"seg": {"miou": 39.0, "pix_acc": 49.0}, "depth": {"abs_err": 0.51}}
  assert multitask.delta_m(better, BASE, HIGHER) < 0 < multitask.delta_m(worse, BASE, HIGHER)
  assert multitask.delta_p(worse, BASE, HIGHER) < 0 < multitask.delta_p(better, BASE, HIGHER)


def test_one_metric_per_task_makes_delta_p_minus_delta_m():
  higher = {"a": {"acc": True}, "b": {"err": False}}
  base = {"a": {"acc": 0.8}, "b": {"err": 2.0}}
  new = {"a": {"acc": 0.9}, "b": {"err": 2.5}}
  # a: +12.5%, b: -25%.
  assert multitask.delta_m(new, base, higher) == pytest.approx(6.25)
  assert multitask.delta_p(new, base, higher) == pytest.approx(-6.25)


def test_mean_rank_with_ties():
  higher = {"t1": {"acc": True, "err": False}, "t2": {"acc": True}}
  scores = {
      "a": {"t1": {"acc": 3.0, "err": 0.5}, "t2": {"acc": 7.0}},
      "b": {"t1": {"acc": 2.0, "err": 0.5}, "t2": {"acc": 7.0}},
      "c": {"t1": {"acc": 1.0, "err": 0.1}, "t2": {"acc": 7.0}},
  }
  # t1/acc: a 1, b 2, c 3; t1/err: c 1, a and b tie for 2-3 -> 2.5; t2/acc: all tie -> 2.
  ranks = multitask.mean_rank(scores, higher)
  assert list(ranks) == ["a", "b", "c"]
  assert ranks["a"] == pytest.approx((1 + 2.5 + 2) / 3)
  assert ranks["b"] == pytest.approx((2 + 2.5 + 2) / 3)
  assert ranks["c"] == pytest.approx((3 + 1 + 2) / 3)
  # Ranks of n methods on one metric always sum to n(n+1)/2.
  assert sum(ranks.values()) == pytest.approx(6.0)


def test_layout_errors_name_the_mismatch():
  with pytest.raises(ValueError, match="abs_err"):
    multitask.delta_m({"seg": RESULT["seg"], "depth": {}}, BASE, HIGHER)
  with pytest.raises(ValueError, match="tasks"):
    multitask.delta_p({"seg": RESULT["seg"]}, BASE, HIGHER)
  with pytest.raises(ValueError, match="is 0"):
    multitask.delta_m(RESULT, {**BASE, "depth": {"abs_err": 0.0}}, HIGHER)
