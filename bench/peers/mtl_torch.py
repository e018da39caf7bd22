"""PyTorch peers of bench/mtl_balancers.py: one multitask training step, same configuration.

  bench/.venv-peers/bin/python bench/peers/mtl_torch.py [--tasks 2 10 40]
      [--methods sum,mean,pcgrad,...] [--windows 3] [--steps 10] [--threads 1]

Hard parameter sharing: an MLP trunk (64 -> 256 -> 256, ReLU) with one linear regression
head per task, batch 256, mean squared error per task, Adam 1e-3. Methods:

  sum        plain PyTorch: the summed losses' backward pass (equal weighting).
  <name>     TorchJD (Quinton & Rey 2024): ``mtl_backward`` (the per-task Jacobian of the
             trunk's parameters, ordinary gradients for the heads), then ``jac_to_grad``
             with the aggregator of that name: mean, pcgrad, mgda, upgrad, cagrad,
             nash_mtl, imtl (IMTL-G), aligned_mtl, graddrop, gradvac, fairgrad.

The methods' windows are interleaved after one warm-up window each. Prints one JSON line
per (method, T) with the keys of bench/harness.py's report; a method that fails (e.g. an
aggregator whose optional solver is not installed) gets ``skipped`` with the error.
LibMTL is not measured: 1.1.5 imports ``torchvision.models.utils`` (bench/peers/setup.sh).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import time
from importlib import metadata

import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("sum", "mean", "pcgrad", "mgda", "upgrad", "cagrad", "nash_mtl", "imtl",
           "aligned_mtl", "graddrop", "gradvac", "fairgrad")


def aggregator(name: str, num_tasks: int):
  """TorchJD's aggregator for a metalm balancer name, with metalm's default settings."""
  from torchjd import aggregation as agg  # pylint: disable=import-outside-toplevel
  return {
      "mean": agg.Mean, "pcgrad": agg.PCGrad, "mgda": agg.MGDA, "upgrad": agg.UPGrad,
      "cagrad": lambda: agg.CAGrad(c=0.4), "nash_mtl": lambda: agg.NashMTL(num_tasks),
      "imtl": agg.IMTLG, "aligned_mtl": agg.AlignedMTL, "graddrop": agg.GradDrop,
      "gradvac": agg.GradVac, "fairgrad": lambda: agg.FairGrad(alpha=1.0),
  }[name]()


def make_step(method: str, num_tasks: int, batch_size: int = 256, dim: int = 64):
  """A closure running one training step of ``method`` on a fixed random batch."""
  torch.manual_seed(0)
  trunk = nn.Sequential(nn.Linear(dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
  heads = nn.ModuleList(nn.Linear(256, 1) for _ in range(num_tasks))
  opt = torch.optim.Adam([*trunk.parameters(), *heads.parameters()], lr=1e-3)
  x = torch.randn(batch_size, dim)
  ys = [torch.randn(batch_size, 1) for _ in range(num_tasks)]

  def losses():
    features = trunk(x)
    return features, [F.mse_loss(head(features), y) for head, y in zip(heads, ys, strict=True)]

  if method == "sum":
    def step():
      opt.zero_grad()
      torch.stack(losses()[1]).sum().backward()
      opt.step()
    return step

  from torchjd.autojac import jac_to_grad, mtl_backward  # pylint: disable=import-outside-toplevel
  combine = aggregator(method, num_tasks)

  def step():
    opt.zero_grad()
    features, task_losses = losses()
    mtl_backward(task_losses, features)
    jac_to_grad(list(trunk.parameters()), combine)
    opt.step()
  return step


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--tasks", type=int, nargs="+", default=[2, 10, 40])
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--windows", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  names = [n for n in args.methods.split(",") if n]
  for num_tasks in args.tasks:
    steps, skipped = {}, {}
    for name in names:
      try:
        step = make_step(name, num_tasks)
        for _ in range(args.steps):  # Warm-up window.
          step()
        steps[name] = step
      except Exception as error:  # pylint: disable=broad-except
        skipped[name] = f"{type(error).__name__}: {error}"[:300]
    rates = {name: [] for name in steps}
    for _ in range(args.windows):  # Interleaved windows.
      for name, step in steps.items():
        start = time.perf_counter()
        for _ in range(args.steps):
          step()
        rates[name].append(args.steps / (time.perf_counter() - start))
    for name in names:
      impl = "torch (summed loss)" if name == "sum" else f"torchjd {metadata.version('torchjd')}"
      config = {"tasks": num_tasks, "trunk": "MLP 64-256-256", "batch": 256, "impl": impl,
                "method": name}
      line = {"what": f"multitask step, {name}", "config": config}
      if name in skipped:
        line["skipped"] = skipped[name]
      else:
        line.update(median=round(statistics.median(rates[name]), 3),
                    min=round(min(rates[name]), 3), max=round(max(rates[name]), 3),
                    windows=f"{args.windows} x {args.steps} steps, interleaved")
      line.update(peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  machine=(f"{platform.machine()}, {os.cpu_count()} CPU cores, torch "
                           f"{torch.__version__}, {torch.get_num_threads()} threads"))
      print(json.dumps(line), flush=True)


if __name__ == "__main__":
  main()
