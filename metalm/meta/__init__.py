"""Meta-learners: factories returning ``base.MetaLearner`` bundles of pure functions."""

from metalm import registry
from metalm.meta import maml

METHODS = {
    "maml": maml.maml,
    "fomaml": maml.fomaml,
}


def get(name: str):
  """The meta-learner factory registered as ``name``."""
  return registry.lookup("meta-learner", name, METHODS)
