"""One convolution layer per formulation and pass: where a Conv-4 meta-step spends its time.

  python bench/conv_layer.py [--impls xla,im2col,winograd] [--tasks 32]
      [--images 80] [--size 14] [--channels 64]

A 3x3 'SAME' convolution of ``--channels`` to ``--channels`` over ``--tasks`` tasks of
``--images`` images each (defaults: the second Conv-4 layer of 5-way 1-shot MAML with 15
queries, meta-batch 32), each task with its own kernel (``vmap``, as meta-learners run
it). Timed passes: the forward output, the gradient to the input, the gradient to the
kernel. One JSON line per (formulation, pass), with GFLOP/s on XLA's count of the
direct convolution and the fraction of the measured matmul rate.
"""

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

from metalm.models import layers

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import harness  # noqa: E402  (bench/harness.py)


def conv(impl: str):
  """``(x_NxHxWxC, kernel_3x3xCxF) -> y`` for one task, in the given formulation."""
  if impl == "xla":
    return lambda x, k: jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  if impl == "im2col":
    return lambda x, k: layers.im2col(x, (3, 3)) @ k.reshape(-1, k.shape[-1])
  if impl == "winograd":
    return layers.winograd_conv3x3
  raise SystemExit(f"Unknown --impls entry {impl!r}; choose from xla, im2col, winograd.")


def passes(impl: str) -> dict:
  """Pass name -> ``f(x, kernels) -> array`` over the task axis."""
  one = conv(impl)
  forward = jax.vmap(one)

  def loss(x, k):
    return jnp.sum(forward(x, k) ** 2) / 2

  return {"forward": forward, "input gradient": jax.grad(loss, 0),
          "kernel gradient": jax.grad(loss, 1)}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--impls", default="xla,im2col,winograd")
  parser.add_argument("--tasks", type=int, default=32)
  parser.add_argument("--images", type=int, default=80)
  parser.add_argument("--size", type=int, default=14)
  parser.add_argument("--channels", type=int, default=64)
  parser.add_argument("--windows", type=int, default=5)
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  c = args.channels
  x = jnp.asarray(rng.standard_normal(
      (args.tasks, args.images, args.size, args.size, c), np.float32))
  kernels = jnp.asarray(rng.standard_normal((args.tasks, 3, 3, c, c), np.float32) / 24)
  # Every formulation is credited XLA's count of the direct convolution, pass by pass.
  flops = {name: harness.lowered_flops(jax.jit(fn).lower(x, kernels))
           for name, fn in passes("xla").items()}
  peak = harness.matmul_peak()
  for impl in args.impls.split(","):
    for name, fn in passes(impl).items():

      def step(state, kernels, fn=fn):  # The (donated) state carries x through.
        return state, fn(state, kernels)

      timing = harness.time_step(step, jnp.copy(x), kernels, windows=args.windows,
                                 steps=args.steps, flops=flops[name], peak=peak)
      harness.report(f"conv layer {name} calls/s",
                     {"impl": impl, "tasks": args.tasks, "images": args.images,
                      "size": args.size, "channels": c}, timing)


if __name__ == "__main__":
  main()
