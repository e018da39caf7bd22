"""PyTorch peers of bench/sinusoid_maml.py and bench/omniglot_maml.py, same configurations.

  bench/.venv-peers/bin/python bench/peers/maml_torch.py sinusoid [--order 2]
  bench/.venv-peers/bin/python bench/peers/maml_torch.py omniglot [--order 2] [--windows 3]

Four implementations of one MAML meta-step (mean query loss over the meta-batch, Adam
outer update): learn2learn (``l2l.algorithms.MAML``), higher (``innerloop_ctx``), a
Python loop over tasks with ``torch.func.functional_call`` and ``torch.autograd.grad``
(``create_graph`` for 2nd order), and ``torch.func.vmap`` over tasks of a nested
``torch.func.grad``. The implementations' windows are interleaved (A B C D A B C D)
after one warm-up window each. Prints one JSON line per implementation with the keys
of bench/harness.py's report; ``peak_rss_mb`` is the whole process's.

Threads: ``--threads`` defaults to all cores. On a shared, loaded machine, torch with
2 OpenMP threads ran 7 to 100 times slower than with 1 here (its threads wait for each
other at every parallel op), so compare at both where the machine is busy.
"""

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
import types

import torch
import torch.nn.functional as F
from torch import nn

IMPLS = ("l2l", "higher", "func_loop", "func_vmap")
# Not run by default: func_vmap with nn.BatchNorm2d, whose 2nd-order gradients are wrong.
EXTRA_IMPLS = ("func_vmap_native_bn",)


def _stub_torchvision() -> bool:
  """Lets learn2learn import where torchvision can't: it only needs it for l2l.vision.

  PyPI's torchvision wheels are CUDA builds whose ops library needs libtorch_cuda.so,
  so with the CPU torch they fail at import ("operator torchvision::nms does not
  exist"). The MAML code used here never touches torchvision.
  """
  try:
    import torchvision  # noqa: F401
    return False
  except Exception:  # pylint: disable=broad-except
    pass

  class Stub(types.ModuleType):

    def __getattr__(self, name):
      if name.startswith("__"):
        raise AttributeError(name)
      if name[:1].islower():
        value = Stub(f"{self.__name__}.{name}")
        sys.modules[value.__name__] = value
      else:
        value = type(name, (), {})
      setattr(self, name, value)
      return value

  for name in ("torchvision", "torchvision.datasets", "torchvision.datasets.folder",
               "torchvision.datasets.omniglot", "torchvision.transforms"):
    sys.modules[name] = Stub(name)
    parent, _, child = name.rpartition(".")
    if parent:
      setattr(sys.modules[parent], child, sys.modules[name])
  return True


# --- models and data -------------------------------------------------------------------


def mlp() -> nn.Module:
  """MLP 1-40-40-1 with ReLU (Finn et al. 2017, sinusoid)."""
  return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                       nn.Linear(40, 1))


class BatchStatsNorm2d(nn.BatchNorm2d):
  """BatchNorm2d with batch statistics written in plain tensor ops.

  Under ``torch.func.vmap`` over tasks, nested ``torch.func.grad`` through the native
  ``batch_norm`` gives wrong second-order meta-gradients (off by ~1e-3 relative in
  float64, where the loop matches finite differences; first order is right). Written
  out, the same layer differentiates correctly under vmap.
  """

  def forward(self, x):
    mean = x.mean((0, 2, 3), keepdim=True)
    var = x.var((0, 2, 3), unbiased=False, keepdim=True)
    return ((x - mean) * torch.rsqrt(var + self.eps) * self.weight[:, None, None]
            + self.bias[:, None, None])


def conv4(ways: int, filters: int = 64, norm=nn.BatchNorm2d) -> nn.Module:
  """Conv-4 for 28x28x1: [conv 3x3 pad 1, BN (batch stats), ReLU, max-pool 2] x 4."""
  layers, channels = [], 1
  for _ in range(4):
    # track_running_stats=False: every call normalizes with its own batch statistics
    # (support and query sets separately), as Finn's code does and as metalm's
    # "transductive" BN mode; it also keeps the module free of buffers to update.
    layers += [nn.Conv2d(channels, filters, 3, padding=1),
               norm(filters, track_running_stats=False), nn.ReLU(), nn.MaxPool2d(2)]
    channels = filters
  return nn.Sequential(*layers, nn.Flatten(), nn.Linear(filters, ways))


def sinusoid_tasks(generator, num_tasks, num_support=10, num_query=10):
  """y = A sin(x - phase), A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5]; [T, N, 1]."""
  amplitude = torch.empty(num_tasks, 1, 1).uniform_(0.1, 5.0, generator=generator)
  phase = torch.empty(num_tasks, 1, 1).uniform_(0.0, math.pi, generator=generator)
  x = torch.empty(num_tasks, num_support + num_query, 1).uniform_(-5.0, 5.0,
                                                                 generator=generator)
  y = amplitude * torch.sin(x - phase)
  return x[:, :num_support], y[:, :num_support], x[:, num_support:], y[:, num_support:]


def omniglot_tasks(ways, shots, queries, num_tasks, seed=0):
  """Random episodes of Omniglot's shapes: [T, N, 1, 28, 28] images, [T, N] labels."""
  generator = torch.Generator().manual_seed(seed)
  labels = lambda n: torch.arange(ways).repeat_interleave(n).repeat(num_tasks, 1)
  return (torch.rand(num_tasks, ways * shots, 1, 28, 28, generator=generator),
          labels(shots),
          torch.rand(num_tasks, ways * queries, 1, 28, 28, generator=generator),
          labels(queries))


# --- one meta-step per implementation ----------------------------------------------------
# Each builder takes (model, loss_fn, inner_lr, order) and returns step(tasks) that runs
# one meta-step (zero_grad, per-task adaptation, mean query loss, backward, Adam).


def l2l_step(model, loss_fn, inner_lr, order):
  import learn2learn as l2l  # pylint: disable=import-outside-toplevel
  maml = l2l.algorithms.MAML(model, lr=inner_lr, first_order=order == 1)
  opt = torch.optim.Adam(maml.parameters(), 1e-3)

  def step(tasks):
    opt.zero_grad()
    num_tasks = tasks[0].shape[0]
    for xs, ys, xq, yq in zip(*tasks, strict=True):
      learner = maml.clone()
      learner.adapt(loss_fn(learner(xs), ys))
      (loss_fn(learner(xq), yq) / num_tasks).backward()
    opt.step()
  return step


def higher_step(model, loss_fn, inner_lr, order):
  import higher  # pylint: disable=import-outside-toplevel
  params = list(model.parameters())
  opt = torch.optim.Adam(params, 1e-3)
  inner_opt = torch.optim.SGD(params, lr=inner_lr)

  def step(tasks):
    opt.zero_grad()
    num_tasks = tasks[0].shape[0]
    for xs, ys, xq, yq in zip(*tasks, strict=True):
      with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False,
                                track_higher_grads=order == 2) as (fmodel, diffopt):
        diffopt.step(loss_fn(fmodel(xs), ys))
        loss = loss_fn(fmodel(xq), yq) / num_tasks
        if order == 2:
          loss.backward()
        else:  # Untracked fast weights are fresh leaves: their gradient is FOMAML's.
          grads = torch.autograd.grad(loss, fmodel.parameters())
          for p, g in zip(params, grads, strict=True):
            p.grad = g if p.grad is None else p.grad + g
    opt.step()
  return step


def func_loop_step(model, loss_fn, inner_lr, order):
  params = dict(model.named_parameters())
  opt = torch.optim.Adam(params.values(), 1e-3)
  call = torch.func.functional_call

  def step(tasks):
    opt.zero_grad()
    num_tasks = tasks[0].shape[0]
    for xs, ys, xq, yq in zip(*tasks, strict=True):
      grads = torch.autograd.grad(loss_fn(call(model, params, (xs,)), ys),
                                  list(params.values()), create_graph=order == 2)
      fast = {k: p - inner_lr * g for (k, p), g in zip(params.items(), grads, strict=True)}
      (loss_fn(call(model, fast, (xq,)), yq) / num_tasks).backward()
    opt.step()
  return step


def func_vmap_step(model, loss_fn, inner_lr, order):
  params = dict(model.named_parameters())
  opt = torch.optim.Adam(params.values(), 1e-3)
  call = torch.func.functional_call

  def task_loss(p, xs, ys, xq, yq):
    grads = torch.func.grad(lambda q: loss_fn(call(model, q, (xs,)), ys))(p)
    if order == 1:
      grads = {k: g.detach() for k, g in grads.items()}
    fast = {k: p[k] - inner_lr * grads[k] for k in p}
    return loss_fn(call(model, fast, (xq,)), yq)

  def meta_loss(p, tasks):
    return torch.func.vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(p, *tasks).mean()

  meta_grad = torch.func.grad(meta_loss)

  def step(tasks):
    detached = {k: v.detach() for k, v in params.items()}
    for k, g in meta_grad(detached, tasks).items():
      params[k].grad = g
    opt.step()
  return step


BUILDERS = {"l2l": l2l_step, "higher": higher_step, "func_loop": func_loop_step,
            "func_vmap": func_vmap_step, "func_vmap_native_bn": func_vmap_step}
LABELS = {"l2l": "learn2learn {l2l} l2l.algorithms.MAML, loop over tasks",
          "higher": "higher {higher} innerloop_ctx, loop over tasks",
          "func_loop": "torch.func functional_call + autograd.grad, loop over tasks",
          "func_vmap": "torch.func vmap over tasks of nested torch.func.grad",
          "func_vmap_native_bn": "torch.func vmap over tasks of nested torch.func.grad"}


def version(package: str) -> str:
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  try:
    return metadata.version(package)
  except metadata.PackageNotFoundError:
    return "not installed"


def machine() -> str:
  return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def check_agree(names, make_model, loss_fn, inner_lr, order, tasks):
  """Max abs difference of each implementation's meta-gradient from func_loop's."""
  grads = {}
  adam_step = torch.optim.Adam.step
  for name in ("func_loop", *names):
    captured = []
    torch.optim.Adam.step = lambda self, *a, captured=captured, **k: captured.extend(
        p.grad.clone() for group in self.param_groups for p in group["params"])
    try:
      torch.manual_seed(0)
      BUILDERS[name](make_model(name), loss_fn, inner_lr, order)(tasks)
    finally:
      torch.optim.Adam.step = adam_step
    grads[name] = captured
  ref = grads["func_loop"]
  return {name: max((a - b).abs().max().item() for a, b in zip(g, ref, strict=True))
          for name, g in grads.items()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("bench", choices=("sinusoid", "omniglot"))
  parser.add_argument("--impls", default=",".join(IMPLS),
                      help=f"comma-separated, from {IMPLS + EXTRA_IMPLS}")
  parser.add_argument("--order", type=int, choices=(1, 2), default=2)
  parser.add_argument("--meta_batch_size", type=int)
  parser.add_argument("--ways", type=int, default=5)
  parser.add_argument("--shots", type=int, default=1)
  parser.add_argument("--queries", type=int, default=15)
  parser.add_argument("--windows", type=int, default=5)
  parser.add_argument("--steps", type=int, help="steps per window (20 / 1)")
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="torch.set_num_threads; on a loaded machine 1 can be far faster")
  parser.add_argument("--check", action="store_true",
                      help="print how far each meta-gradient is from func_loop's, then exit")
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  stubbed = _stub_torchvision()
  method = "maml" if args.order == 2 else "fomaml"
  names = [n for n in args.impls.split(",") if n]

  if args.bench == "sinusoid":
    meta_batch = args.meta_batch_size or 25
    steps = args.steps or 20
    make_model = lambda name: mlp()
    loss_fn, inner_lr = F.mse_loss, 0.01
    generator = torch.Generator().manual_seed(1)
    sample = lambda: sinusoid_tasks(generator, meta_batch)  # Fresh tasks every step.
    what = f"sinusoid {method} meta-steps/s"
    config = {"model": "MLP 1-40-40-1", "K": 10, "meta_batch": meta_batch,
              "inner_steps": 1}
  else:
    meta_batch = args.meta_batch_size or 32
    steps = args.steps or 1
    make_model = lambda name: conv4(
        args.ways, norm=BatchStatsNorm2d if name == "func_vmap" else nn.BatchNorm2d)
    loss_fn, inner_lr = F.cross_entropy, 0.4
    tasks = omniglot_tasks(args.ways, args.shots, args.queries, meta_batch)
    sample = lambda: tasks
    what = f"omniglot conv4 {method} meta-steps/s"
    config = {"ways": args.ways, "shots": args.shots, "queries": args.queries,
              "meta_batch": meta_batch, "inner_steps": 1, "filters": 64}

  if args.check:
    diffs = check_agree(names, make_model, loss_fn, inner_lr, args.order, sample())
    print(json.dumps({"what": f"{args.bench} {method} max |grad - func_loop grad|",
                      **diffs}), flush=True)
    return

  runs = {}
  for name in names:
    torch.manual_seed(0)
    runs[name] = BUILDERS[name](make_model(name), loss_fn, inner_lr, args.order)
  for step in runs.values():  # Warm-up window.
    for _ in range(steps):
      step(sample())
  rates = {name: [] for name in runs}
  for _ in range(args.windows):  # Interleaved windows: A B C D A B C D ...
    for name, step in runs.items():
      start = time.perf_counter()
      for _ in range(steps):
        step(sample())
      rates[name].append(steps / (time.perf_counter() - start))
  versions = {"l2l": version("learn2learn"), "higher": version("higher")}
  for name in runs:
    impl_config = {**config, "impl": LABELS[name].format(**versions), "impl_key": name}
    if args.bench == "omniglot":
      impl_config["bn"] = ("batch statistics per set, "
                           + ("plain ops" if name == "func_vmap" else "nn.BatchNorm2d"))
    if name == "l2l" and stubbed:
      impl_config["note"] = "torchvision stubbed: PyPI's wheel needs a CUDA torch"
    print(json.dumps({
        "what": what, "config": impl_config,
        "median": round(statistics.median(rates[name]), 3),
        "min": round(min(rates[name]), 3),
        "max": round(max(rates[name]), 3),
        "windows": f"{args.windows} x {steps} steps, interleaved with {','.join(runs)}",
        "compile_s": 0,
        "step_memory_mb": None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": machine(),
    }), flush=True)


if __name__ == "__main__":
  main()
