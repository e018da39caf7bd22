"""Multitask training: balancers chosen by name, architectures, the training step.

Every balancer is a factory returning a ``base.LossBalancer`` (weights the losses; one
backward pass) or a ``base.GradBalancer`` (combines per-task gradients of the shared
parameters). ``build`` turns a config group into one, with the generic options
``every_n`` (recompute the weights every N steps, e.g. Nash-MTL-N) and
``subsample_tasks`` (the balancer sees K random tasks, e.g. CAGrad-Fast).
"""

import inspect

import ml_collections

from metalm import registry
from metalm.mtl import (
  aligned_mtl,
  cagrad,
  db_mtl,
  dwa,
  equal_weighting,
  fairgrad,
  famo,
  gls,
  graddrop,
  gradnorm,
  gradvac,
  imtl,
  mgda,
  nash_mtl,
  options,
  pcgrad,
  rlw,
  scale_invariant,
  stch,
  uncertainty,
  upgrad,
)

BALANCERS = {
    # Loss weighting.
    "equal_weighting": equal_weighting.equal_weighting,
    "scale_invariant": scale_invariant.scale_invariant,
    "uncertainty": uncertainty.uncertainty,
    "dwa": dwa.dwa,
    "rlw": rlw.rlw,
    "gls": gls.gls,
    "famo": famo.famo,
    "stch": stch.stch,
    # Gradient manipulation.
    "gradnorm": gradnorm.gradnorm,
    "db_mtl": db_mtl.db_mtl,
    "mgda": mgda.mgda,
    "pcgrad": pcgrad.pcgrad,
    "graddrop": graddrop.graddrop,
    "gradvac": gradvac.gradvac,
    "cagrad": cagrad.cagrad,
    "imtl": imtl.imtl,
    "nash_mtl": nash_mtl.nash_mtl,
    "aligned_mtl": aligned_mtl.aligned_mtl,
    "upgrad": upgrad.upgrad,
    "fairgrad": fairgrad.fairgrad,
}

GENERIC_OPTIONS = ("every_n", "subsample_tasks")


def get(name: str):
  """The balancer factory registered as ``name``."""
  return registry.lookup("balancer", name, BALANCERS)


# Factory arguments sized from the shared parameters, filled in by ``build``.
TEMPLATE_ARGUMENTS = ("grads_like", "params_like")


def build(config: ml_collections.ConfigDict | dict, *, shared_params=None):
  """Builds the balancer ``config.name`` with its options and the generic wrappers.

  Args:
    config: ``name``, the factory's keyword options, and optionally ``every_n`` (int)
      and ``subsample_tasks`` (int, the K of K tasks per step).
    shared_params: the shared parameters (or their shapes); balancers whose state holds
      per-parameter history (DB-MTL's gradient EMA, GradVac's per-layer targets) are
      sized from them, so the state has one structure from the first step (required by
      ahead-of-time compilation and checkpoint restore).
  """
  config = dict(config)
  name = config.pop("name")
  factory = get(name)
  every_n = config.pop("every_n", None)
  subsample = config.pop("subsample_tasks", None)
  registry.check_keywords(factory, config, where="config.balancer",
                          what=f"balancer {name!r}", ignore=TEMPLATE_ARGUMENTS)
  accepted = inspect.signature(factory).parameters
  if shared_params is not None:
    config.update({a: shared_params for a in TEMPLATE_ARGUMENTS if a in accepted})
  balancer = factory(**config)
  if subsample:
    balancer = options.subsample_tasks(balancer, subsample)
  if every_n and every_n > 1:
    balancer = options.every_n(balancer, every_n)
  return balancer
