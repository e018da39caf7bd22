"""metalm's multitask step beside TorchJD and plain PyTorch, run in turn; prints a table.

  bash bench/peers/setup.sh            # once: bench/.venv-peers with torch and TorchJD
  python bench/compare_mtl.py [--tasks 2 10 40] [--balancers pcgrad,mgda,...]
      [--torch_threads 1] [--rounds 1] [--windows 3] [--steps 10]

Both sides train the configuration of bench/mtl_balancers.py (MLP trunk 64-256-256, a
linear head per task, batch 256, Adam). Each round runs bench/mtl_balancers.py (this
Python) and bench/peers/mtl_torch.py (the peers' venv, once per torch thread count),
rotating which goes first. Per (balancer, T) the table gives the median over rounds of
each run's median steps/s (the best thread count for torch) and metalm / fastest torch;
equal weighting's torch figure is the faster of the summed-loss backward and TorchJD's
``Mean``. Every JSON line also goes to ``--out`` with the load average at its start.
"""

import argparse
import os
import statistics
import sys

from compare import BENCH, PEERS_PY, fmt, run

BALANCERS = ("equal_weighting", "pcgrad", "mgda", "upgrad", "cagrad", "nash_mtl", "imtl",
             "aligned_mtl", "graddrop", "gradvac", "fairgrad")


def torchjd_name(balancer: str) -> str:
  """TorchJD's method for a metalm balancer: its ``Mean`` aggregator for equal weighting."""
  return "mean" if balancer == "equal_weighting" else balancer


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--tasks", type=int, nargs="+", default=[2, 10, 40])
  parser.add_argument("--balancers", default=",".join(BALANCERS))
  parser.add_argument("--torch_threads", default="1")
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--windows", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--out", default=os.path.join("runs", "compare_mtl.jsonl"))
  args = parser.parse_args()
  if not os.path.exists(PEERS_PY):
    raise SystemExit("bench/.venv-peers is missing: run `bash bench/peers/setup.sh`.")
  names = [b for b in args.balancers.split(",") if b]
  torch_methods = ["sum", *map(torchjd_name, names)]
  tasks = [str(t) for t in args.tasks]
  timing = ["--windows", str(args.windows), "--steps", str(args.steps)]
  runs = [(None, [sys.executable, os.path.join(BENCH, "mtl_balancers.py"), "--tasks",
                  *tasks, "--balancers", *names, *timing])]
  runs += [(t, [PEERS_PY, os.path.join(BENCH, "peers", "mtl_torch.py"), "--tasks", *tasks,
                "--methods", ",".join(dict.fromkeys(torch_methods)), "--threads", t,
                *timing]) for t in args.torch_threads.split(",")]
  rates = {}  # (side, method, T) -> {torch threads: [median per run]}
  skipped = {}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as out:
    for r in range(args.rounds):
      shift = r % len(runs)
      for threads, command in runs[shift:] + runs[:shift]:
        for line in run(command, out):
          side = "jax" if threads is None else "torch"
          method = line["what"].split(", ", 1)[1]
          key = (side, method, line["config"]["tasks"])
          if "skipped" in line:
            skipped[key] = line["skipped"]
          else:
            rates.setdefault(key, {}).setdefault(threads, []).append(line["median"])

  def best(side, method, t):
    """The best thread count's median over rounds."""
    per_threads = rates.get((side, method, t), {})
    return max((statistics.median(v) for v in per_threads.values()), default=None)

  print(f"\nTraining steps/s, median over {args.rounds} round(s) of each run's median; "
        f"torch threads {args.torch_threads} (best); raw lines in {args.out}.\n")
  print("| balancer | T | metalm (JAX) | TorchJD | plain torch (summed loss) "
        "| metalm / fastest torch |")
  print("|---" * 6 + "|")
  for t in args.tasks:
    for name in names:
      jax_rate = best("jax", name, t)
      jd = best("torch", torchjd_name(name), t)
      plain = best("torch", "sum", t) if name == "equal_weighting" else None
      torch_rates = [x for x in (jd, plain) if x]
      jd_cell = fmt(jd) if jd else skipped.get(("torch", torchjd_name(name), t), "n/a")[:60]
      ratio = f"{jax_rate / max(torch_rates):.3g}x" if jax_rate and torch_rates else "n/a"
      print(f"| {name} | {t} | {fmt(jax_rate) if jax_rate else 'n/a'} | "
            f"{jd_cell} | "
            f"{fmt(plain) if plain else '-'} | {ratio} |")


if __name__ == "__main__":
  main()
