"""Every balancer on the two-objective toy of CAGrad / Nash-MTL: trajectories and a plot.

  python -m experiments.multitask.toy --config=experiments/multitask/configs/toy.py:cagrad \
      --workdir=runs/toy_cagrad

Writes ``results.json`` (each method's final point, losses and distance to the Pareto set
from every start, and the starts it fails from) and ``trajectories.png``.

Observed (CPU, float32; tests/test_multitask_toy.py asserts the ``cagrad`` and
``five_starts`` outcomes of MGDA, CAGrad, Nash-MTL and equal weighting):

  ``cagrad``:   MGDA, CAGrad, Nash-MTL, PCGrad, IMTL, FairGrad, Aligned-MTL, GradVac,
                GradNorm, FAMO and DB-MTL reach the Pareto set from all three starts.
                Equal weighting fails from (-8.5, 7.5) and (9, 9), stuck in the flat
                valleys of y > 0 (CAGrad's Fig. 1 shows the same), as do the other loss
                weightings (DWA, GLS, RLW, UW, scale-invariant, STCH), GradDrop and
                UPGrad (which stops near y = 0).
  ``nash_mtl``: MGDA, IMTL, FairGrad, FAMO, GradNorm and DB-MTL reach it from all five
                starts. Nash-MTL fails from (-8.5, 7.5): it stops at (-6.97, 0.02),
                where the clamp in f1 makes L1 flat in x and the two gradients are
                almost opposed (the exact bargaining solution then barely moves; the
                official solver, 20 cvxpy iterations, starts from and on failure keeps
                its previous weights, so it need not stop there). CAGrad
                (c = 0.4) and equal weighting fail from (-8.5, 7.5), still descending
                after 35,000 steps, and from (9, 9); equal weighting on these losses
                converges to x = -5.73, the optimum of 0.1 L1 + L2.
  ``five_starts``: with both losses unscaled, MGDA, CAGrad (c = 0.5) and Nash-MTL reach
                the Pareto set (y = -8.355) from all five of Nash-MTL's starts; equal
                weighting fails from (-8.5, 7.5) and (9, 9).
"""

import json
import os
import time

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.multitask import toy_plot, toy_problem

CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)


def main(argv):
  del argv
  config, workdir = CONFIG.value, WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  results, trajectories = {}, {}
  for name in config.balancers:
    start = time.perf_counter()
    trajectories[name] = toy_problem.run(config, name)
    results[name] = {**toy_problem.summarize(config, trajectories[name]),
                     "wall_clock_s": time.perf_counter() - start}
    logging.info("%s: %.1fs, fails from %s", name, results[name]["wall_clock_s"],
                 results[name]["fails_from"] or "no start")
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"setting": config.setting, "starts": [list(s) for s in config.starts],
               "methods": results, "config": json.loads(config.to_json())}, f, indent=2)
  toy_plot.grid(os.path.join(workdir, "trajectories.png"), trajectories, config)
  logging.info("Wrote %s.", workdir)


if __name__ == "__main__":
  app.run(main)
