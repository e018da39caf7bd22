"""A small message-passing network over padded molecules, pooled to one vector.

Continuous-filter convolutions over all atom pairs (as SchNet, Schütt et al. 2017,
arXiv:1706.08566) with the bond type of each pair as an extra input; a CPU-sized
stand-in for the MPNN of Nash-MTL's QM9 experiment (Gilmer et al. 2017,
arXiv:1704.01212; Navon et al. 2022, arXiv:2202.01017).

Input ``x [B, A, F + 3 + 1 + A]``: per atom its features (F), position (3), a 1/0 mask,
then the bond type to each atom (0 none, 1..4 single, double, triple, aromatic), as
``pack_molecules`` builds it.
"""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

NUM_BOND_TYPES = 4


def pack_molecules(nodes, positions, mask, edges, edge_features, edge_mask) -> np.ndarray:
  """Padded molecules (``data.qm9.Molecules`` fields, ``[B, ...]``) as one float32 array.

  Returns:
    ``[B, A, F + 3 + 1 + A]``: features, positions, mask, then each pair's bond type.
  """
  b, a = mask.shape
  bond_type = np.where(edge_mask, np.argmax(edge_features, -1) + 1, 0)
  bonds = np.zeros((b, a, a), np.float32)
  rows = np.repeat(np.arange(b), edges.shape[1])
  np.maximum.at(bonds, (rows, edges[..., 0].ravel(), edges[..., 1].ravel()),
                bond_type.ravel().astype(np.float32))
  return np.concatenate([nodes, positions, mask[..., None], bonds], axis=-1).astype(np.float32)


class PairConvNet(nn.Module):
  """Atom states updated by ``num_layers`` rounds of pairwise messages, then summed.

  Attributes:
    num_features: F, the per-atom input features.
    hidden: width of atom states and filters.
    num_layers: message-passing rounds.
    num_rbf: Gaussian radial basis functions of the distance (0 to ``cutoff`` angstrom).
    cutoff: the largest distance the basis covers.
  """

  num_features: int
  hidden: int = 64
  num_layers: int = 3
  num_rbf: int = 32
  cutoff: float = 10.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    f = self.num_features
    nodes, positions, mask = x[..., :f], x[..., f:f + 3], x[..., f + 3] > 0
    bonds = x[..., f + 4:].astype(jnp.int32)
    atoms = mask.shape[-1]
    pair = mask[..., :, None] & mask[..., None, :] & ~jnp.eye(atoms, dtype=bool)
    distance = jnp.linalg.norm(positions[..., :, None, :] - positions[..., None, :, :], axis=-1)
    centers = jnp.linspace(0.0, self.cutoff, self.num_rbf)
    rbf = jnp.exp(-((distance[..., None] - centers) ** 2) * (self.num_rbf / self.cutoff) ** 2)
    pair_features = jnp.concatenate(
        [rbf, jnp.eye(NUM_BOND_TYPES + 1, dtype=rbf.dtype)[bonds]], axis=-1)
    h = nn.Dense(self.hidden)(nodes)
    for _ in range(self.num_layers):
      filters = nn.Dense(self.hidden)(nn.softplus(nn.Dense(self.hidden)(pair_features)))
      messages = (filters * nn.Dense(self.hidden)(h)[..., None, :, :]) * pair[..., None]
      h = h + nn.Dense(self.hidden)(nn.softplus(nn.Dense(self.hidden)(messages.sum(-2))))
      h = jnp.where(mask[..., None], h, 0.0)
    return nn.softplus(nn.Dense(self.hidden)(h.sum(-2)))
