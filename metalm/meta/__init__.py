"""Meta-learners: factories returning ``base.MetaLearner`` bundles of pure functions."""

import inspect

import ml_collections

from metalm import registry, validate
from metalm.meta import (
    anil,
    boil,
    cavia,
    imaml,
    maml,
    maml_plus_plus,
    meta_sgd,
    protonet,
    reptile,
    ridge_head,
    svm_head,
)
from metalm.train import optim

METHODS = {
    "maml": maml.maml,
    "fomaml": maml.fomaml,
    "meta_sgd": meta_sgd.meta_sgd,
    "anil": anil.anil,
    "boil": boil.boil,
    "reptile": reptile.reptile,
    "protonet": protonet.protonet,
    "r2d2": ridge_head.r2d2,
    "metaoptnet_svm": svm_head.metaoptnet_svm,
    "cavia": cavia.cavia,
    "imaml": imaml.imaml,
    "maml_plus_plus": maml_plus_plus.maml_plus_plus,
}


def get(name: str):
  """The meta-learner factory registered as ``name``."""
  return registry.lookup("meta-learner", name, METHODS)


def build(config: ml_collections.ConfigDict, model, *, loss_fn, num_ways=None, **overrides):
  """Builds the learner ``config.name`` with the other fields as its options.

  ``inner_optimizer`` (a group with ``name`` and optax arguments) becomes the
  ``inner_tx`` transformation; ``loss_fn`` and ``num_ways`` are passed to the
  factories that take them.

  Args:
    config: ``name`` plus the factory's keyword options.
    model: the ``ModelFns``.
    loss_fn: ``loss(out, y) -> (loss, metrics)``.
    num_ways: classes per episode, for metric and closed-form heads.
    **overrides: options that replace the config's (e.g. test-time ``inner_steps``).
  """
  factory = get(config.name)
  options = {k: v for k, v in config.items() if k != "name"}
  if "inner_optimizer" in options:
    options["inner_tx"] = optim.build(
        options.pop("inner_optimizer"), "config.method.inner_optimizer")
  options.update(overrides)
  if "inner_steps" in options:
    validate.integer(options["inner_steps"], "config.method.inner_steps", minimum=0)
  registry.check_keywords(factory, options, where="config.method",
                          what=f"meta-learner {config.name!r}",
                          ignore=("model", "loss_fn", "num_ways"))
  accepted = inspect.signature(factory).parameters
  if "loss_fn" in accepted:
    options["loss_fn"] = loss_fn
  if "num_ways" in accepted:
    options["num_ways"] = num_ways
  return factory(model, **options)
