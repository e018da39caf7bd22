"""The whole benchmark suite in one command: every script, one JSON line each into --out.

  python bench/suite.py [--parts sinusoid,omniglot,conv,fewshot,memory,mtl,attention]
      [--out runs/suite.jsonl] [--quick]

Runs each part's scripts one after the other on the default backend (CPU, GPU or TPU:
the scripts pick XLA's convolution on accelerators and im2col on CPU), appends their
JSON lines to ``--out`` with the part's name and the 1-minute load average when it
started, and ends with one summary line per measurement: steps/s and, where the
script counts FLOPs, the fraction of the device's measured matmul rate. ``--quick``
shortens every timing (fewer windows and steps, fewer sizes) for a first look.
"""

import argparse
import json
import os
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))


def parts(quick: bool) -> dict[str, list[list[str]]]:
  """Part name -> its commands (script and flags)."""
  short = ["--windows", "2", "--steps", "1"] if quick else ["--windows", "5", "--steps", "3"]
  sinusoid = ["--windows", "2", "--steps", "100"] if quick else []
  return {
      "sinusoid": [["sinusoid_maml.py", *sinusoid],
                   ["sinusoid_maml.py", "--first_order", *sinusoid]],
      "omniglot": [["omniglot_maml.py", "--order", "2", *short],
                   ["omniglot_maml.py", "--order", "1", *short],
                   ["omniglot_maml.py", "--order", "2", "--task_chunk", "1", *short]],
      "conv": [["conv_layer.py", *short]],
      "fewshot": [["fewshot_methods.py", *short]],
      "memory": [["memory.py"] + (["--inner_steps", "1", "5"] if quick else [])],
      "mtl": [["mtl_balancers.py", "--balancers", "equal_weighting", "pcgrad", "nash_mtl",
               "famo"] + (["--tasks", "2", "10", "--windows", "2"] if quick else [])],
      "attention": [["attention.py"] + (["--quick"] if quick else [])],
  }


def run(part: str, command: list[str], out) -> list[dict]:
  """Runs one script; writes and returns its JSON lines."""
  load = round(os.getloadavg()[0], 2)
  print(f"$ python bench/{' '.join(command)}", file=sys.stderr, flush=True)
  start = time.perf_counter()
  proc = subprocess.run([sys.executable, os.path.join(BENCH, command[0]), *command[1:]],
                        capture_output=True, text=True, check=False,
                        cwd=os.path.dirname(BENCH))
  lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
  if proc.returncode:
    print(proc.stderr[-3000:], file=sys.stderr)
    lines.append({"what": "failed", "command": " ".join(command),
                  "returncode": proc.returncode})
  for line in lines:
    line.update(suite_part=part, load_1min_at_start=load)
    out.write(json.dumps(line) + "\n")
    out.flush()
  print(f"  {len(lines)} lines in {time.perf_counter() - start:.0f} s", file=sys.stderr)
  return lines


def summary(line: dict) -> str:
  config = line.get("config") or {key: line[key] for key in ("method", "inner_steps")
                                  if key in line}
  figures = [f"{line[key]} {unit}" for key, unit in (
      ("median", "steps/s"), ("tokens_per_s", "tokens/s"), ("gflop_per_s", "GFLOP/s"),
      ("fraction_of_peak", "of matmul peak"), ("step_memory_mb", "MB")) if key in line]
  return f"{line['what']} {json.dumps(config)}: {', '.join(figures)}"


def main():
  all_parts = parts(quick=False)
  parser = argparse.ArgumentParser()
  parser.add_argument("--parts", default=",".join(all_parts))
  parser.add_argument("--out", default=os.path.join("runs", "suite.jsonl"))
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args()
  chosen = args.parts.split(",")
  unknown = sorted(set(chosen) - set(all_parts))
  if unknown:
    raise SystemExit(f"Unknown --parts {unknown}; choose from {sorted(all_parts)}.")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  lines = []
  with open(args.out, "a") as out:
    for part in chosen:
      for command in parts(args.quick)[part]:
        lines += run(part, command, out)
  for line in lines:
    print(summary(line))
  if any(line["what"] == "failed" for line in lines):
    raise SystemExit(1)


if __name__ == "__main__":
  main()
