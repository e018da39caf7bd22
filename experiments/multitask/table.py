"""A campaign of multitask runs as one table: per-task scores, delta_m, delta_p, mean rank.

  python -m experiments.multitask.table runs/mm_campaign \
      --baselines=single_left,single_right [--lower_is_better=depth/abs_err,...]

Reads ``<run>/results.json`` in every run folder directly under the campaign folder.
The baseline runs (single-task runs of the same config, ``--config.data.tasks=<task>``)
give each task's reference scores; every other run gets delta_m (%, lower is better,
as in Nash-MTL and FAMO) and delta_p (%, higher is better, LibMTL's) against them, and
all of them a mean rank over every metric. Runs are listed by delta_m. Metrics are
taken as higher-is-better unless ``results.json`` says otherwise or
``--lower_is_better`` names them as ``task/metric``.
"""

import argparse
import json
import pathlib

from metalm.eval import multitask as multitask_eval


def load_runs(folder: pathlib.Path) -> dict[str, dict]:
  """``{run folder name: results.json}``, for the run folders that have finished."""
  runs = {path.parent.name: json.loads(path.read_text())
          for path in sorted(folder.glob("*/results.json"))}
  if not runs:
    raise SystemExit(f"No */results.json under {folder}: give the folder that holds the "
                     "runs' workdirs.")
  return runs


def baseline_scores(runs: dict[str, dict], names: list[str]) -> dict:
  """Each task's scores from the single-task run that trained it."""
  if not names:
    raise SystemExit("--baselines names no run: give the single-task runs' folders.")
  missing = [n for n in names if n not in runs]
  if missing:
    raise SystemExit(f"Baseline runs {missing} have no results.json; finished runs: "
                     f"{sorted(runs)}.")
  scores = {}
  for name in names:
    for task, metrics in runs[name]["scores"].items():
      if task in scores:
        raise SystemExit(f"Task {task!r} is in more than one baseline run ({names}).")
      scores[task] = metrics
  return scores


def table(runs: dict[str, dict], baselines: list[str], lower_is_better=()) -> str:
  """The markdown table of the runs that are not baselines."""
  reference = baseline_scores(runs, baselines)
  rows = {name: r for name, r in runs.items() if name not in baselines}
  tasks = sorted({t for r in rows.values() for t in r["scores"]})
  if set(tasks) - set(reference):
    raise SystemExit(f"No baseline run trained {sorted(set(tasks) - set(reference))}; "
                     f"the baselines {baselines} trained {sorted(reference)}.")
  higher = {t: {m: f"{t}/{m}" not in lower_is_better for m in reference[t]} for t in tasks}
  for r in rows.values():
    for t, metrics in r.get("higher_is_better", {}).items():
      higher[t].update(metrics)
  ranks = multitask_eval.mean_rank({n: r["scores"] for n, r in rows.items()}, higher)
  stats = {n: (multitask_eval.delta_m(r["scores"], reference, higher),
               multitask_eval.delta_p(r["scores"], reference, higher)) for n, r in rows.items()}
  columns = [(t, m) for t in tasks for m in higher[t]]
  lines = ["| run | balancer | " + " | ".join(f"{t} {m}" for t, m in columns)
           + " | delta_m (%) | delta_p (%) | mean rank | wall clock |",
           "|---" * (len(columns) + 6) + "|",
           "| single task | - | " + " | ".join(f"{reference[t][m]:.2f}" for t, m in columns)
           + " | 0 | 0 | - | - |"]
  for name in sorted(rows, key=lambda n: stats[n][0]):
    r = rows[name]
    balancer = r["balancer"] + (" (rep_grad)" if r.get("rep_grad") else "")
    lines.append(f"| {name} | {balancer} | "
                 + " | ".join(f"{r['scores'][t][m]:.2f}" for t, m in columns)
                 + f" | {stats[name][0]:+.2f} | {stats[name][1]:+.2f} | {ranks[name]:.2f} | "
                 f"{r['wall_clock_s']:.0f} s |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("campaign", type=pathlib.Path)
  parser.add_argument("--baselines", required=True,
                      help="comma-separated run folders of the single-task runs")
  parser.add_argument("--lower_is_better", default="",
                      help="comma-separated task/metric names where lower is better")
  args = parser.parse_args()
  print(table(load_runs(args.campaign), [b for b in args.baselines.split(",") if b],
              tuple(x for x in args.lower_is_better.split(",") if x)))


if __name__ == "__main__":
  main()
