"""Meta-learners: factories returning ``base.MetaLearner`` bundles of pure functions."""

from metalm import registry
from metalm.meta import anil, boil, maml, meta_sgd, reptile

METHODS = {
    "maml": maml.maml,
    "fomaml": maml.fomaml,
    "meta_sgd": meta_sgd.meta_sgd,
    "anil": anil.anil,
    "boil": boil.boil,
    "reptile": reptile.reptile,
}


def get(name: str):
  """The meta-learner factory registered as ``name``."""
  return registry.lookup("meta-learner", name, METHODS)
