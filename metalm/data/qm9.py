"""QM9 with the 11 regression targets of Nash-MTL and FAMO, as padded dense graphs.

QM9 (Ramakrishnan et al. 2014) as PyTorch Geometric processes it: 130,831 molecules of
at most 29 atoms (H, C, N, O, F). The targets are PyG's columns
``(0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11)``::

  mu (D) <- 0      alpha (a0^3) <- 1   homo (eV) <- 2     lumo (eV) <- 3
  r2 (a0^2) <- 5   zpve (eV) <- 6      U0 (eV) <- 12      U (eV) <- 13
  H (eV) <- 14     G (eV) <- 15        cv (cal/mol/K) <- 11

the gap (4) left out, U0, U, H and G taken as atomization energies (12-15), as DimeNet
and Nash-MTL's ``target_idx`` do. Nash-MTL reports MAE in meV for homo, lumo, zpve and
the four energies (``REPORT_SCALE``). The split follows Nash-MTL: a seeded permutation;
its first 10,000 molecules are the test set, the next 10,000 validation, the remaining
110,831 training; targets are standardized by the mean and (unbiased) std of the
training molecules. Nash-MTL's code computes them as ``train_dataset.data.y``, which
is every molecule: ``stats="all"`` does the same. Its permutation is torch's, drawn after
the model's initialization, so it cannot be recomputed here; pass one as ``permutation``.

PyG is not needed: export its processed data once to ``$METALM_DATA_DIR/qm9/qm9.npz``
(atoms and edges of all molecules concatenated, molecule by molecule)::

  import numpy as np, torch
  from torch_geometric.datasets import QM9
  mols = list(QM9("QM9"))  # downloads and processes the 130,831 molecules
  cat = lambda key, dim=0: torch.cat([m[key] for m in mols], dim).numpy()
  np.savez("qm9/qm9.npz", num_atoms=np.array([m.num_nodes for m in mols]),
           num_edges=np.array([m.num_edges for m in mols]), x=cat("x"), z=cat("z"),
           pos=cat("pos"), edge_index=cat("edge_index", 1), edge_attr=cat("edge_attr"),
           y=cat("y"))

giving ``num_atoms [N]``, ``num_edges [N]``, ``x [A, 11]`` (one-hot H C N O F, atomic
number, aromatic, sp sp2 sp3, number of H), ``z [A]``, ``pos [A, 3]`` (angstrom),
``edge_index [2, E]`` (bonds both ways, atom indices within each molecule),
``edge_attr [E, 4]`` (one-hot single, double, triple, aromatic) and ``y [N, 19]``.
Reference: Navon et al. 2022, "Multi-Task Learning as a Bargaining Game", arXiv:2202.01017.
"""

import pathlib
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metalm.data import fewshot_images

TARGET_NAMES = ("mu", "alpha", "homo", "lumo", "r2", "zpve", "U0", "U", "H", "G", "cv")
PYG_TARGETS = (0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11)
# Reporting units: eV -> meV for homo, lumo, zpve, U0, U, H, G (Nash-MTL's multiply_indx).
REPORT_SCALE = np.array([1, 1, 1000, 1000, 1, 1000, 1000, 1000, 1000, 1000, 1], np.float32)
REPORT_UNITS = ("D", "a0^3", "meV", "meV", "a0^2", "meV", "meV", "meV", "meV", "meV",
                "cal/mol/K")
# Single-task test MAE in reporting units, the reference of Nash-MTL's and FAMO's Delta_m.
STL_MAE = np.array([0.0671, 0.1814, 60.576, 53.915, 0.5027, 4.539, 58.838, 64.244, 63.852,
                    66.223, 0.07212])
MAX_ATOMS = 29
NUM_MOLECULES = 130_831
NUM_NODE_FEATURES = 11
NUM_BOND_TYPES = 4
_KEYS = ("num_atoms", "num_edges", "x", "z", "pos", "edge_index", "edge_attr", "y")
_DATASET = "QM9"
_LAYOUT = ("qm9/qm9.npz with num_atoms [N], num_edges [N], x [A, 11], z [A], pos [A, 3], "
           "edge_index [2, E], edge_attr [E, 4] and y [N, 19], exported from PyG's QM9 by "
           "the recipe in metalm/data/qm9.py's docstring")
_FIX = ("Set METALM_DATA_DIR to the folder that holds qm9/ (or pass data_dir=) with "
        f"{_LAYOUT}.")


class Molecules(NamedTuple):
  """Molecules padded to 29 atoms and the most bonds of any molecule (E)."""

  nodes: np.ndarray  # [N, 29, 11] float32: PyG's atom features, 0 on padding.
  atomic_numbers: np.ndarray  # [N, 29] int32, 0 on padding.
  positions: np.ndarray  # [N, 29, 3] float32, angstrom.
  mask: np.ndarray  # [N, 29] bool: real atoms.
  edges: np.ndarray  # [N, E, 2] int32: (source, target) atom of each directed bond.
  edge_features: np.ndarray  # [N, E, 4] float32: bond type one-hot.
  edge_mask: np.ndarray  # [N, E] bool: real bonds.
  targets: np.ndarray  # [N, 11] float32, standardized.


class QM9(NamedTuple):
  """Nash-MTL's split and the statistics that standardize the targets."""

  train: Molecules
  val: Molecules
  test: Molecules
  mean: np.ndarray  # [11] float64, in PyG's units.
  std: np.ndarray  # [11] float64.


def load(data_dir=None, *, seed: int = 0, permutation: np.ndarray | None = None,
         num_val: int = 10_000, num_test: int = 10_000, stats: str = "train",
         check_count: bool = True, sha256: Mapping[str, str] | None = None) -> QM9:
  """QM9's 11 targets, split and standardized as in Nash-MTL.

  Args:
    data_dir: the datasets folder holding ``qm9/`` (or that folder itself);
      ``$METALM_DATA_DIR`` by default.
    seed: seeds the permutation (``np.random.default_rng(seed).permutation(N)``).
    permutation: the molecule order to split instead (e.g. one saved from torch).
    num_val, num_test: split sizes, taken after the test molecules.
    stats: ``"train"`` standardizes by the training molecules, ``"all"`` by all.
    check_count: require PyG's 130,831 molecules.
    sha256: optional ``{file name relative to qm9/: hex digest}`` to check first.

  Returns:
    ``QM9`` with ``Molecules`` per split; targets in the order of ``TARGET_NAMES``.

  Raises:
    FileNotFoundError: ``qm9.npz`` is missing (the message names it).
    ValueError: the file is not an npz of the layout (the key and shapes are named).
  """
  if stats not in ("train", "all"):
    raise ValueError(f"Unknown stats {stats!r}; use 'train' or 'all'.")
  root = qm9_dir(data_dir)
  path = root / "qm9.npz"
  fewshot_images.require([path], dataset=_DATASET, layout=_LAYOUT)
  fewshot_images.check_sha256(root, sha256, dataset=_DATASET)
  arrays = _read(path)
  n = len(arrays["num_atoms"])
  if check_count and n != NUM_MOLECULES:
    raise ValueError(f"{_DATASET}: {path} holds {n} molecules, expected {NUM_MOLECULES}: an "
                     "incomplete or different export (pass check_count=False to load it).")
  if permutation is None:
    permutation = np.random.default_rng(seed).permutation(n)
  permutation = np.asarray(permutation)
  if not np.array_equal(np.sort(permutation), np.arange(n)):
    raise ValueError(f"permutation must hold each of 0..{n - 1} once.")
  if num_val + num_test >= n:
    raise ValueError(f"num_val + num_test = {num_val + num_test} leaves no training "
                     f"molecules of {n}.")
  test, val = permutation[:num_test], permutation[num_test:num_test + num_val]
  train = permutation[num_test + num_val:]
  raw = arrays["y"][:, list(PYG_TARGETS)].astype(np.float64)
  rows = train if stats == "train" else slice(None)
  mean, std = raw[rows].mean(axis=0), raw[rows].std(axis=0, ddof=1)
  targets = normalize(raw, mean, std).astype(np.float32)
  max_edges = int(arrays["num_edges"].max())
  return QM9(*(_pad(arrays, r, targets, max_edges) for r in (train, val, test)), mean, std)


def qm9_dir(data_dir=None) -> pathlib.Path:
  """``<data_dir>/qm9``, or ``data_dir`` itself if it holds ``qm9.npz``."""
  return fewshot_images.data_root(data_dir, "qm9", ["qm9.npz"], dataset=_DATASET, fix=_FIX)


def normalize(raw_NxT, mean_T, std_T):
  """Targets in PyG's units -> standardized."""
  return (raw_NxT - mean_T) / std_T


def denormalize(targets_NxT, mean_T, std_T):
  """Standardized targets (or predictions) -> PyG's units."""
  return targets_NxT * std_T + mean_T


def report_scale(std_T) -> np.ndarray:
  """Per-target factors from standardized errors to reporting units (``REPORT_UNITS``)."""
  return np.asarray(std_T) * REPORT_SCALE


def complete_graph(molecules: Molecules) -> tuple[jax.Array, jax.Array]:
  """Features of every atom pair, as PyG's ``Complete`` + ``Distance(norm=False)``.

  Args:
    molecules: a batch ``[B, ...]`` of ``Molecules`` (targets unused).

  Returns:
    ``(pair_features [B, 29, 29, 5], pair_mask [B, 29, 29])``: the bond one-hot (zero for
    unbonded pairs) and the distance; the mask holds pairs of two real, distinct atoms.
  """

  def one(edges, features, edge_mask, positions, mask):
    features = jnp.where(edge_mask[:, None], features, 0.0)
    bonds = jnp.zeros((MAX_ATOMS, MAX_ATOMS, features.shape[-1]), features.dtype)
    bonds = bonds.at[edges[:, 0], edges[:, 1]].add(features)
    offsets = positions[:, None, :] - positions[None, :, :]
    distance = jnp.sqrt((offsets**2).sum(axis=-1, keepdims=True))
    pair = mask[:, None] & mask[None, :] & ~jnp.eye(MAX_ATOMS, dtype=bool)
    return jnp.concatenate([bonds, distance], axis=-1), pair

  return jax.vmap(one)(molecules.edges, molecules.edge_features, molecules.edge_mask,
                       molecules.positions, molecules.mask)


def _pad(arrays, rows, targets, max_edges) -> Molecules:
  atoms, atom_mask = _gather(arrays["num_atoms"], rows, MAX_ATOMS)
  bonds, edge_mask = _gather(arrays["num_edges"], rows, max_edges)

  def take(source, index, mask, dtype):
    out = source[index].astype(dtype)
    return np.where(mask.reshape(mask.shape + (1,) * (out.ndim - 2)), out, 0).astype(dtype)

  return Molecules(
      nodes=take(arrays["x"], atoms, atom_mask, np.float32),
      atomic_numbers=take(arrays["z"], atoms, atom_mask, np.int32),
      positions=take(arrays["pos"], atoms, atom_mask, np.float32),
      mask=atom_mask,
      edges=take(arrays["edge_index"].T, bonds, edge_mask, np.int32),
      edge_features=take(arrays["edge_attr"], bonds, edge_mask, np.float32),
      edge_mask=edge_mask,
      targets=targets[rows])


def _gather(counts, rows, width):
  """Flat indices ``[R, width]`` of each row's items (0 past its count) and their mask."""
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[rows]
  mask = np.arange(width) < counts[rows][:, None]
  return np.where(mask, starts[:, None] + np.arange(width), 0), mask


def _read(path: pathlib.Path) -> dict[str, np.ndarray]:
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in _KEYS if k in npz.files}
      found = sorted(npz.files)
  except Exception as error:  # noqa: BLE001  (any parse failure is named)
    raise ValueError(f"{_DATASET}: cannot read {path}: {error!r}; a partial download or "
                     f"export is a common cause. Expected {_LAYOUT}.") from error
  missing = [k for k in _KEYS if k not in arrays]
  if missing:
    raise ValueError(f"{_DATASET}: {path} has no {missing} (found {found}). "
                     f"Expected {_LAYOUT}.")
  _check(arrays, path)
  return arrays


def _check(arrays, path) -> None:
  num_atoms, num_edges = arrays["num_atoms"], arrays["num_edges"]
  n = len(num_atoms) if num_atoms.ndim == 1 else -1
  a = int(num_atoms.sum()) if n >= 0 else -1
  e = int(num_edges.sum()) if num_edges.ndim == 1 else -1
  expected = {"num_atoms": (n,), "num_edges": (n,), "x": (a, NUM_NODE_FEATURES), "z": (a,),
              "pos": (a, 3), "edge_index": (2, e), "edge_attr": (e, NUM_BOND_TYPES),
              "y": (n, 19)}
  for key, shape in expected.items():
    array = arrays[key]
    if n < 0 or array.shape != shape or array.dtype.kind not in "fiub":
      raise ValueError(f"{_DATASET}: {path}: {key} is {array.dtype} {list(array.shape)}; "
                       f"expected numeric {list(shape)} (N = {n} molecules, A = {a} atoms, "
                       f"E = {e} edges). Expected {_LAYOUT}.")
  for key in ("num_atoms", "num_edges", "z", "edge_index"):
    if arrays[key].dtype.kind not in "iu":
      raise ValueError(f"{_DATASET}: {path}: {key} must be integers, not {arrays[key].dtype}.")
  if n and (num_atoms.min() < 1 or num_atoms.max() > MAX_ATOMS or num_edges.min() < 0):
    raise ValueError(f"{_DATASET}: {path}: molecules must have 1..{MAX_ATOMS} atoms and "
                     f"no negative edge counts; found {num_atoms.min()}..{num_atoms.max()} "
                     f"atoms, {num_edges.min()} edges.")
  limit = np.repeat(num_atoms, num_edges)
  bad = np.flatnonzero(((arrays["edge_index"] < 0) | (arrays["edge_index"] >= limit)).any(0))
  if bad.size:
    molecule = int(np.searchsorted(np.cumsum(num_edges), bad[0], side="right"))
    raise ValueError(f"{_DATASET}: {path}: edge {bad[0]} (of molecule {molecule}) joins "
                     f"atoms {arrays['edge_index'][:, bad[0]].tolist()}, outside that "
                     f"molecule's {num_atoms[molecule]} atoms; edge_index must hold atom "
                     "indices within each molecule.")
