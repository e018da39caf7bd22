"""metalm's MAML benchmarks beside the PyTorch peers, run interleaved; prints tables.

  bash bench/peers/setup.sh            # once: bench/.venv-peers with torch and the peers
  python bench/compare.py [--cases sinusoid2,sinusoid1,omniglot2,omniglot1]
      [--torch_threads 2,1] [--rounds 2] [--omniglot_rounds 1] [--omniglot_windows 3]

Each round runs, per case, the JAX script (this Python) and bench/peers/maml_torch.py
(the peers' venv, once per torch thread count), rotating which goes first; the torch
script itself interleaves its implementations window by window. Per implementation the
table gives the median over rounds of each run's median meta-steps/s (the best thread
count when several are given) and JAX / fastest torch. Every JSON line also goes to
``--out``, with the 1-minute load average when its run started.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
PEERS_PY = os.path.join(BENCH, ".venv-peers", "bin", "python")
TORCH_SCRIPT = os.path.join(BENCH, "peers", "maml_torch.py")
TORCH_IMPLS = ("l2l", "higher", "func_loop", "func_vmap")
HEADERS = {"jax": "metalm (JAX)", "l2l": "learn2learn", "higher": "higher",
           "func_loop": "torch.func loop", "func_vmap": "torch.func vmap"}


def cases(args):
  """Case name -> (title, JAX command, torch command without --threads)."""
  sin_jax = [sys.executable, os.path.join(BENCH, "sinusoid_maml.py"),
             "--windows", str(args.sinusoid_windows), "--steps", "500"]
  sin_torch = [PEERS_PY, TORCH_SCRIPT, "sinusoid", "--windows",
               str(args.sinusoid_windows), "--steps", str(args.sinusoid_torch_steps)]
  om_jax = [sys.executable, os.path.join(BENCH, "omniglot_maml.py"),
            "--windows", str(args.omniglot_windows), "--steps", "1"]
  om_torch = [PEERS_PY, TORCH_SCRIPT, "omniglot", "--windows",
              str(args.omniglot_windows), "--steps", "1"]
  return {
      "sinusoid2": ("sinusoid MLP, meta-batch 25, 2nd order", sin_jax,
                    sin_torch + ["--order", "2"]),
      "sinusoid1": ("sinusoid MLP, meta-batch 25, 1st order",
                    sin_jax + ["--first_order"], sin_torch + ["--order", "1"]),
      "omniglot2": ("Omniglot Conv-4 5w1s, meta-batch 32, 2nd order",
                    om_jax + ["--order", "2"], om_torch + ["--order", "2"]),
      "omniglot1": ("Omniglot Conv-4 5w1s, meta-batch 32, 1st order",
                    om_jax + ["--order", "1"], om_torch + ["--order", "1"]),
  }


def run(command, out):
  """Runs one benchmark process; returns its JSON lines, each with the load added."""
  load = os.getloadavg()[0]
  shown = ["python" if c == sys.executable else os.path.relpath(c) if os.path.isabs(c)
           else c for c in command]
  print("$ " + " ".join(shown), file=sys.stderr, flush=True)
  proc = subprocess.run(command, capture_output=True, text=True, check=False,
                        cwd=os.path.dirname(BENCH))
  lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
  if proc.returncode or not lines:
    print(proc.stderr[-3000:], file=sys.stderr)
    raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}")
  for line in lines:
    line["load_1min_at_start"] = round(load, 2)
    out.write(json.dumps(line) + "\n")
    out.flush()
  return lines


def fmt(rate):
  return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--cases", default="sinusoid2,sinusoid1,omniglot2,omniglot1")
  parser.add_argument("--torch_threads", default=str(os.cpu_count()),
                      help="comma-separated torch.set_num_threads values, one run each")
  parser.add_argument("--rounds", type=int, default=2, help="rounds of sinusoid cases")
  parser.add_argument("--omniglot_rounds", type=int, default=1,
                      help="rounds of Omniglot cases (a 2nd-order step takes seconds)")
  parser.add_argument("--sinusoid_windows", type=int, default=3)
  parser.add_argument("--sinusoid_torch_steps", type=int, default=20)
  parser.add_argument("--omniglot_windows", type=int, default=3)
  parser.add_argument("--out", default=os.path.join("runs", "compare.jsonl"))
  args = parser.parse_args()
  if not os.path.exists(PEERS_PY):
    raise SystemExit("bench/.venv-peers is missing: run `bash bench/peers/setup.sh`.")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  chosen = {n: c for n, c in cases(args).items() if n in args.cases.split(",")}
  threads = [int(t) for t in args.torch_threads.split(",")]
  results = {n: {} for n in chosen}  # case -> (impl, threads) -> [JSON lines]
  start = time.time()
  with open(args.out, "w") as out:
    for r in range(max(args.rounds, args.omniglot_rounds)):
      for name, (_, jax_cmd, torch_cmd) in chosen.items():
        if r >= (args.omniglot_rounds if name.startswith("omniglot") else args.rounds):
          continue
        runs = [(None, jax_cmd)] + [(t, torch_cmd + ["--threads", str(t)]) for t in threads]
        shift = r % len(runs)
        for t, command in runs[shift:] + runs[:shift]:
          for line in run(command, out):
            impl = "jax" if t is None else line["config"]["impl_key"]
            results[name].setdefault((impl, t), []).append(line)
  minutes = (time.time() - start) / 60

  impls = ["jax", *TORCH_IMPLS]
  rounds = sorted({args.omniglot_rounds if n.startswith("omniglot") else args.rounds
                   for n in chosen})
  print(f"\nMeta-steps/s: median over {'/'.join(map(str, rounds))} rounds of each run's "
        f"median; torch threads "
        f"{args.torch_threads}, best shown. {minutes:.1f} min; load average now "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; raw lines in {args.out}.\n")
  print("| case | " + " | ".join(HEADERS[i] for i in impls) + " | JAX / fastest torch |")
  print("|---" * (len(impls) + 2) + "|")
  detail = []
  for name, (title, _, _) in chosen.items():
    best = {}  # impl -> (rate, threads)
    for (impl, t), lines in results[name].items():
      rate = statistics.median(line["median"] for line in lines)
      detail.append((title, impl, t, rate, min(x["min"] for x in lines),
                     max(x["max"] for x in lines), len(lines), lines[0]["windows"],
                     max(x["peak_rss_mb"] for x in lines),
                     [x["load_1min_at_start"] for x in lines]))
      if impl not in best or rate > best[impl][0]:
        best[impl] = (rate, t)
    cells = []
    for i in impls:
      if i not in best:
        cells.append("n/a")
      else:
        rate, t = best[i]
        cells.append(fmt(rate) + (f" ({t}t)" if t is not None and len(threads) > 1 else ""))
    torch_best = max(best[i][0] for i in TORCH_IMPLS if i in best)
    print(f"| {title} | " + " | ".join(cells) + f" | {best['jax'][0] / torch_best:.3g} |")

  # Peak RSS of a torch run is its whole process's (all four implementations).
  print("\n| case | implementation | torch threads | median | min | max | runs x windows "
        "| peak RSS MB | load at start |")
  print("|---" * 9 + "|")
  for title, impl, t, rate, lo, hi, n, windows, rss, loads in detail:
    print(f"| {title} | {HEADERS[impl]} | {t if t is not None else '-'} | {fmt(rate)} | "
          f"{fmt(lo)} | {fmt(hi)} | {n} x {windows.split(',')[0]} | {rss} | "
          f"{', '.join(f'{x:.1f}' for x in loads)} |")


if __name__ == "__main__":
  main()
