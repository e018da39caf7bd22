"""NYUv2, Cityscapes and QM9 loaders on generated files; dense and QM9 metrics by hand.

The dense fixtures write the real layout at the real image sizes, but two or three
examples a split; example ``i``'s image is the flat value ``i / 10`` so every batch says
which files it came from. The QM9 fixture writes a few molecules in the npz export
layout. The metrics are checked against values worked out by hand in the comments.
"""

import hashlib
import shutil

import jax
import numpy as np
import pytest

from metalm.data import cityscapes, nyuv2, qm9, scale_crop
from metalm.eval import dense, regression

NYU_SIZES = {"train": 3, "val": 2}


def _save(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  np.save(path, array)


def _dense_example(i, shape, num_classes, rng, normal=True):
  h, w = shape
  label = rng.integers(-1, num_classes, (h, w)).astype(np.float32)  # MTAN stores floats.
  depth = rng.uniform(0.5, 10, (h, w, 1)).astype(np.float32)
  depth[:4] = 0  # Missing depth.
  out = {"image": np.full((h, w, 3), i / 10, np.float32), "label": label, "depth": depth}
  if normal:
    vectors = rng.normal(size=(h, w, 3)).astype(np.float32)
    out["normal"] = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
  return out


def _write_dense(root, sizes, shape, num_classes, label_folder="label", normal=True):
  rng = np.random.default_rng(0)
  for split, n in sizes.items():
    for i in range(n):
      for folder, array in _dense_example(i, shape, num_classes, rng, normal).items():
        _save(root / split / (label_folder if folder == "label" else folder) / f"{i}.npy",
              array)
  return root


@pytest.fixture(scope="module")
def nyu_dir(tmp_path_factory):
  base = tmp_path_factory.mktemp("data")
  _write_dense(base / "nyuv2", NYU_SIZES, nyuv2.IMAGE_SHAPE, nyuv2.NUM_CLASSES)
  return base


@pytest.fixture(scope="module")
def city_dir(tmp_path_factory):
  base = tmp_path_factory.mktemp("data")
  _write_dense(base / "cityscapes", {"train": 3, "val": 2}, cityscapes.IMAGE_SHAPE,
               cityscapes.NUM_CLASSES, label_folder="label_7", normal=False)
  return base


def _copy(nyu_dir, tmp_path):
  return shutil.copytree(nyu_dir / "nyuv2", tmp_path / "nyuv2")


def test_nyuv2_shapes_dtypes_tasks_and_order(nyu_dir):
  for split, n in NYU_SIZES.items():
    data = nyuv2.load(nyu_dir, split, check_count=False)
    assert len(data) == n and data.tasks == nyuv2.TASKS == ("segmentation", "depth", "normal")
  example = data[1]
  assert example["image"].shape == (288, 384, 3) and example["image"].dtype == np.float32
  assert example["segmentation"].shape == (288, 384)
  assert example["segmentation"].dtype == np.int32
  assert example["segmentation"].min() == -1 and example["segmentation"].max() == 12
  assert example["depth"].shape == (288, 384, 1) and example["depth"].dtype == np.float32
  assert example["normal"].shape == (288, 384, 3)
  batch = nyuv2.load(nyu_dir / "nyuv2", "train", check_count=False).batch([2, 0])
  assert batch.x.shape == (2, 288, 384, 3)
  np.testing.assert_allclose(batch.x[:, 0, 0, 0], [0.2, 0.0])
  assert {k: v.shape for k, v in batch.y.items()} == {
      "segmentation": (2, 288, 384), "depth": (2, 288, 384, 1), "normal": (2, 288, 384, 3)}
  with pytest.raises(IndexError):
    data[n]


def test_nyuv2_iterate_covers_the_split_once(nyu_dir):
  data = nyuv2.load(nyu_dir, "train", check_count=False)
  seen = [b.x[:, 0, 0, 0] for b in data.iterate(2, np.random.default_rng(1),
                                                 drop_remainder=False)]
  assert [len(s) for s in seen] == [2, 1]
  np.testing.assert_allclose(np.sort(np.concatenate(seen)), [0.0, 0.1, 0.2])
  assert len(list(data.iterate(2))) == 1
  with pytest.raises(ValueError, match="rng"):
    next(data.iterate(2, augment=True))
  augmented = next(data.iterate(3, np.random.default_rng(0), augment=True))
  assert augmented.x.shape == (3, 288, 384, 3) and augmented.y["segmentation"].dtype == np.int32


def test_nyuv2_defaults_enforce_the_published_counts_and_shapes(nyu_dir, tmp_path):
  with pytest.raises(ValueError, match=r"holds 3 examples, expected 795.*check_count"):
    nyuv2.load(nyu_dir, "train")
  small = _write_dense(tmp_path / "nyuv2", {"train": 2}, (8, 12), nyuv2.NUM_CLASSES)
  with pytest.raises(ValueError, match=r"image/0\.npy holds float32 \[8, 12, 3\]; expected "
                     r"a numeric image array of shape \[288, 384, 3\]"):
    nyuv2.load(small, check_count=False)
  assert nyuv2.load(small, check_count=False, image_shape=(8, 12))[1]["depth"].shape == (
      8, 12, 1)


def test_nyuv2_missing_file_names_it_and_the_layout(nyu_dir, tmp_path):
  root = _copy(nyu_dir, tmp_path)
  (root / "train" / "depth" / "1.npy").unlink()
  with pytest.raises(FileNotFoundError, match=r"train/depth/1\.npy does not exist.*"
                     r"nyuv2/\{train,val\}/\{image,label,depth,normal\}/<i>\.npy"):
    nyuv2.load(tmp_path, check_count=False)
  shutil.rmtree(root / "val" / "normal")
  with pytest.raises(FileNotFoundError, match=r"val/normal does not exist"):
    nyuv2.load(tmp_path, "val", check_count=False)
  with pytest.raises(FileNotFoundError, match=r"nyuv2 does not exist.*lorenmt/mtan"):
    nyuv2.load(tmp_path / "elsewhere")


def test_nyuv2_reads_metalm_data_dir(nyu_dir, monkeypatch):
  monkeypatch.setenv("METALM_DATA_DIR", str(nyu_dir))
  assert len(nyuv2.load(split="val", check_count=False)) == 2
  monkeypatch.delenv("METALM_DATA_DIR")
  with pytest.raises(FileNotFoundError, match="METALM_DATA_DIR is unset.*nyuv2/"):
    nyuv2.load(check_count=False)


def test_nyuv2_corrupt_files_are_named(nyu_dir, tmp_path):
  root = _copy(nyu_dir, tmp_path)
  (root / "train" / "normal" / "2.npy").write_bytes(b"<html>quota exceeded</html>")
  with pytest.raises(ValueError, match=r"normal/2\.npy is not a \.npy array"):
    nyuv2.load(root, check_count=False)
  np.save(root / "train" / "normal" / "2.npy", np.zeros((288, 384, 3), np.float32))
  np.save(root / "train" / "label" / "0.npy", np.full((288, 384), 13.0, np.float32))
  data = nyuv2.load(root, check_count=False)  # Headers are fine; values are read lazily.
  with pytest.raises(ValueError, match=r"label/0\.npy must hold integer class ids in "
                     r"\[0, 13\) or -1"):
    data[0]
  digest = hashlib.sha256((root / "train" / "label" / "1.npy").read_bytes()).hexdigest()
  nyuv2.load(root, check_count=False, sha256={"train/label/1.npy": digest})
  with pytest.raises(ValueError, match=r"label/0\.npy has sha256"):
    nyuv2.load(root, check_count=False, sha256={"train/label/0.npy": digest})


def test_cityscapes_shapes_tasks_and_errors(city_dir, tmp_path):
  data = cityscapes.load(city_dir, "val", check_count=False)
  assert len(data) == 2 and data.tasks == cityscapes.TASKS == ("segmentation", "depth")
  batch = data.batch([0, 1])
  assert batch.x.shape == (2, 128, 256, 3)
  assert batch.y["segmentation"].shape == (2, 128, 256)
  assert batch.y["segmentation"].max() == 6
  assert batch.y["depth"].shape == (2, 128, 256, 1)
  with pytest.raises(ValueError, match="expected 2975"):
    cityscapes.load(city_dir)
  with pytest.raises(FileNotFoundError, match=r"train/label_19 does not exist.*label_19 "
                     r"\[128, 256\] \(0\.\.18, -1 ignored\)"):
    cityscapes.load(city_dir, num_classes=19, check_count=False)
  root = shutil.copytree(city_dir / "cityscapes", tmp_path / "cityscapes")
  shutil.copytree(root / "train" / "label_7", root / "train" / "label_19")
  assert cityscapes.load(root, num_classes=19, check_count=False).num_classes == 19
  with pytest.raises(ValueError, match=r"train/image/0\.npy holds float32 \[128, 256, 3\]"):
    cityscapes.load(root, check_count=False, image_shape=(256, 512))


def test_scale_crop_resizes_a_window_and_flip_mirrors():
  h, w = 4, 6
  ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  example = {"image": np.stack([ys, xs, ys + xs], -1).astype(np.float32),
             "label": (10 * ys + xs).astype(np.int32),
             "depth": (1.0 + 10 * ys + xs)[..., None].astype(np.float32),
             "normal": np.broadcast_to(np.float32([0.6, 0.0, 0.8]), (h, w, 3))}
  kinds = {"image": "image", "label": "label", "depth": "depth", "normal": "normal"}
  same = scale_crop.random_scale_crop(example, kinds, np.random.default_rng(0), (1.0,))
  for key in example:
    np.testing.assert_array_equal(same[key], example[key])
  out = scale_crop.random_scale_crop(example, kinds, np.random.default_rng(3), (2.0,))
  top, left = divmod(int(out["label"][0, 0]), 10)  # A 2x3 window, scaled up 2x.
  assert 0 <= top <= 2 and 0 <= left <= 3
  # Nearest: rows floor(dst / 2) = 0 0 1 1, columns 0 0 1 1 2 2 of the window.
  rows, cols = np.array([0, 0, 1, 1]) + top, np.array([0, 0, 1, 1, 2, 2]) + left
  np.testing.assert_array_equal(out["label"], example["label"][rows][:, cols])
  np.testing.assert_allclose(out["depth"], example["depth"][rows][:, cols] / 2)
  # Bilinear, corners aligned: 2 rows -> 4 at 0, 1/3, 2/3, 1; 3 columns -> 6 at k * 2/5.
  np.testing.assert_allclose(out["image"][:, 0, 0], top + np.arange(4) / 3, atol=1e-6)
  np.testing.assert_allclose(out["image"][0, :, 1], left + np.arange(6) * 2 / 5, atol=1e-6)
  np.testing.assert_allclose(out["normal"], example["normal"])
  assert all(out[k].dtype == example[k].dtype for k in example)
  flipped = scale_crop.horizontal_flip(example, kinds)
  np.testing.assert_array_equal(flipped["label"], example["label"][:, ::-1])
  np.testing.assert_array_equal(flipped["normal"][0, 0], np.float32([-0.6, 0.0, 0.8]))


def test_segmentation_metrics_by_hand():
  label = np.array([[[0, 0, 1], [1, 2, -1]]])
  pred = np.array([[[0, 1, 1], [1, 0, 2]]])
  # Rows true, columns predicted; the -1 pixel is ignored, class 3 is absent.
  confusion = dense.confusion_matrix(pred, label, 4)
  np.testing.assert_array_equal(confusion, [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0],
                                            [0, 0, 0, 0]])
  metrics = dense.segmentation_metrics(confusion)
  # IoU: class 0 1 / (2 + 2 - 1), class 1 2 / (2 + 3 - 2), class 2 0 / 1; class 3 skipped.
  np.testing.assert_allclose(metrics["miou"], (1 / 3 + 2 / 3 + 0) / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics["pixel_acc"], 3 / 5, rtol=1e-6)
  logits = np.eye(4, dtype=np.float32)[pred]
  jitted = jax.jit(dense.confusion_matrix, static_argnums=2)
  np.testing.assert_array_equal(jitted(logits, label, 4), confusion)
  halves = dense.confusion_matrix(pred[:, :1], label[:, :1], 4) + dense.confusion_matrix(
      pred[:, 1:], label[:, 1:], 4)
  np.testing.assert_array_equal(halves, confusion)


def test_depth_errors_ignore_invalid_pixels(strict_promotion):
  target = np.float32([[[[2], [0]], [[1], [4]]]])
  pred = np.float32([[[[1], [100]], [[3], [4]]]])
  # Valid (target != 0): |1-2| = 1, rel 1/2; |3-1| = 2, rel 2; |4-4| = 0.
  sums = jax.jit(dense.depth_error_sums)(pred, target)
  assert int(sums["count"]) == 3
  metrics = dense.depth_metrics(sums)
  np.testing.assert_allclose(metrics["abs_err"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(metrics["rel_err"], 2.5 / 3, rtol=1e-6)


def test_normal_angle_statistics_by_hand(strict_promotion):
  def at(degrees):
    r = np.radians(degrees)
    return [np.cos(r), np.sin(r), 0.0]

  x = [1.0, 0.0, 0.0]
  # Angles 0, 10, 20, 45 (unnormalized prediction), 90; the last pixel has no normal.
  pred = np.float32([[[at(0), at(10), at(20)], [[2.0, 2.0, 0.0], [0.0, 1.0, 0.0], x]]])
  target = np.float32([[[x, x, x], [x, x, [0.0, 0.0, 0.0]]]])
  angles, valid = dense.normal_angles(pred, target)
  np.testing.assert_allclose(angles[valid], [0, 10, 20, 45, 90], atol=1e-3)
  metrics = jax.jit(dense.normal_metrics)(angles, valid)
  expected = {"angle_mean": 33.0, "angle_median": 20.0, "within_11_25": 2 / 5,
              "within_22_5": 3 / 5, "within_30": 3 / 5}
  for name, value in expected.items():
    np.testing.assert_allclose(metrics[name], value, atol=1e-3, err_msg=name)
  even = dense.normal_metrics(np.float32([0, 10, 45, 90]))  # Median of two middles.
  np.testing.assert_allclose(even["angle_median"], 27.5, atol=1e-4)
  assert set(expected) | {"miou", "pixel_acc", "abs_err", "rel_err"} == set(
      dense.HIGHER_IS_BETTER)


# --- QM9 ---------------------------------------------------------------------------

QM9_ATOMS = np.array([3, 29, 1, 5, 2, 4, 7, 6])


def _qm9_arrays():
  rng = np.random.default_rng(0)
  n, a = len(QM9_ATOMS), int(QM9_ATOMS.sum())
  edges = []
  for count in QM9_ATOMS:  # A chain, each bond both ways, as PyG lists them.
    chain = np.stack([np.arange(count - 1), np.arange(1, count)])
    edges.append(np.concatenate([chain, chain[::-1]], axis=1))
  num_edges = np.array([e.shape[1] for e in edges])
  y = rng.normal(size=(n, 19)) * np.arange(1, 20) + 100 * np.arange(19)
  return {"num_atoms": QM9_ATOMS, "num_edges": num_edges,
          "x": rng.normal(size=(a, 11)).astype(np.float32),
          "z": rng.choice([1, 6, 7, 8, 9], a), "pos": rng.normal(size=(a, 3)).astype(np.float32),
          "edge_index": np.concatenate(edges, axis=1),
          "edge_attr": np.eye(4, dtype=np.float32)[rng.integers(0, 4, num_edges.sum())],
          "y": y.astype(np.float32)}


@pytest.fixture(scope="module")
def qm9_dir(tmp_path_factory):
  base = tmp_path_factory.mktemp("data")
  (base / "qm9").mkdir()
  np.savez(base / "qm9" / "qm9.npz", **_qm9_arrays())
  return base


def _load_qm9(path, **kwargs):
  kwargs = {"check_count": False, "num_val": 2, "num_test": 2, **kwargs}
  return qm9.load(path, **kwargs)


def test_qm9_padded_shapes_split_and_contents(qm9_dir):
  source = _qm9_arrays()
  order = np.array([7, 1, 0, 2, 3, 4, 5, 6])
  data = _load_qm9(qm9_dir, permutation=order)
  assert [len(s.targets) for s in data[:3]] == [4, 2, 2]
  train = data.train  # order[4:]: molecules 3, 4, 5, 6; test is order[:2].
  max_edges = 2 * (29 - 1)
  assert train.nodes.shape == (4, 29, 11) and train.nodes.dtype == np.float32
  assert train.positions.shape == (4, 29, 3) and train.atomic_numbers.dtype == np.int32
  assert train.edges.shape == (4, max_edges, 2) and train.edge_features.shape == (
      4, max_edges, 4)
  assert train.targets.shape == (4, 11) and train.targets.dtype == np.float32
  np.testing.assert_array_equal(train.mask.sum(1), QM9_ATOMS[[3, 4, 5, 6]])
  np.testing.assert_array_equal(data.test.mask.sum(1), QM9_ATOMS[[7, 1]])
  starts = np.concatenate([[0], np.cumsum(QM9_ATOMS)])
  for row, mol in enumerate([3, 4, 5, 6]):
    count = QM9_ATOMS[mol]
    np.testing.assert_array_equal(train.nodes[row, :count], source["x"][starts[mol]:][:count])
    np.testing.assert_array_equal(train.positions[row, :count],
                                  source["pos"][starts[mol]:][:count])
    assert not train.nodes[row, count:].any() and not train.atomic_numbers[row, count:].any()
    assert train.edge_mask[row].sum() == 2 * (count - 1)
    np.testing.assert_array_equal(train.edges[row, :count - 1], np.stack(
        [np.arange(count - 1), np.arange(1, count)], -1))
  seeded = _load_qm9(qm9_dir, seed=3)
  perm = np.random.default_rng(3).permutation(8)
  np.testing.assert_array_equal(seeded.test.mask.sum(1), QM9_ATOMS[perm[:2]])
  np.testing.assert_array_equal(seeded.val.mask.sum(1), QM9_ATOMS[perm[2:4]])


def test_qm9_normalization_round_trip_and_target_mapping(qm9_dir):
  y = _qm9_arrays()["y"].astype(np.float64)
  assert qm9.PYG_TARGETS == (0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11)
  order = np.arange(8)[::-1]
  data = _load_qm9(qm9_dir, permutation=order)
  raw_train = y[order[4:]][:, list(qm9.PYG_TARGETS)]
  np.testing.assert_allclose(data.mean, raw_train.mean(0))
  np.testing.assert_allclose(data.std, raw_train.std(0, ddof=1))
  np.testing.assert_allclose(data.train.targets.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(data.train.targets.std(0, ddof=1), 1, atol=1e-5)
  np.testing.assert_allclose(qm9.denormalize(data.test.targets, data.mean, data.std),
                             y[order[:2]][:, list(qm9.PYG_TARGETS)], rtol=1e-5)
  overall = _load_qm9(qm9_dir, permutation=order, stats="all")
  np.testing.assert_allclose(overall.mean, y[:, list(qm9.PYG_TARGETS)].mean(0))
  # cv is the last target, PyG column 11; r2 is fifth, column 5.
  np.testing.assert_allclose(data.mean[[4, 10]], raw_train[:, [4, 10]].mean(0))
  assert qm9.TARGET_NAMES[4] == "r2" and qm9.TARGET_NAMES[10] == "cv"


def test_qm9_per_target_mae_in_reporting_units(strict_promotion):
  pred = np.float32([[0.0, 1.0], [2.0, -1.0], [9.0, 9.0]])
  target = np.float32([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
  mask = np.array([True, True, False])
  # |errors| = (1, 0) and (2, 2) over the two real rows: (1.5, 1.0), times the scale.
  mae = regression.per_target_mae(pred, target, scale_T=np.float32([2.0, 1000.0]),
                                  mask_B=mask)
  np.testing.assert_allclose(mae, [3.0, 1000.0])
  np.testing.assert_allclose(regression.per_target_mae(pred[:2], target[:2]), [1.5, 1.0])
  scale = qm9.report_scale(np.ones(11))
  assert scale[qm9.TARGET_NAMES.index("homo")] == 1000 and scale[0] == 1


def test_qm9_complete_graph_features():
  mask = np.arange(29)[None] < 3  # Atoms 0 and 1 bonded (double); atom 2 unbonded.
  positions = np.zeros((1, 29, 3), np.float32)
  positions[0, 1], positions[0, 2] = [1.5, 0, 0], [0, 2, 0]
  edges = np.int32([[[0, 1], [1, 0], [0, 0]]])  # The third is padding.
  features = np.float32([[[0, 1, 0, 0], [0, 1, 0, 0], [7, 7, 7, 7]]])
  molecules = qm9.Molecules(np.zeros((1, 29, 11), np.float32), np.zeros((1, 29), np.int32),
                            positions, mask, edges, features, np.array([[True, True, False]]),
                            np.zeros((1, 11), np.float32))
  pairs, pair_mask = jax.jit(qm9.complete_graph)(molecules)
  assert pairs.shape == (1, 29, 29, 5) and pair_mask.shape == (1, 29, 29)
  np.testing.assert_allclose(pairs[0, 0, 1], [0, 1, 0, 0, 1.5])
  np.testing.assert_allclose(pairs[0, 1, 0], [0, 1, 0, 0, 1.5])
  np.testing.assert_allclose(pairs[0, 0, 2], [0, 0, 0, 0, 2.0])
  np.testing.assert_allclose(pairs[0, 1, 2], [0, 0, 0, 0, 2.5])
  assert not np.asarray(pairs[0, 0, 0]).any()  # The padded edge adds nothing.
  np.testing.assert_array_equal(pair_mask[0], mask[0][:, None] & mask[0] & ~np.eye(29, dtype=bool))


def test_qm9_errors_name_the_file_and_key(qm9_dir, tmp_path, monkeypatch):
  with pytest.raises(ValueError, match=r"holds 8 molecules, expected 130831"):
    qm9.load(qm9_dir)
  with pytest.raises(FileNotFoundError, match=r"qm9/qm9\.npz does not exist.*recipe"):
    qm9.load(tmp_path)
  monkeypatch.delenv("METALM_DATA_DIR", raising=False)
  with pytest.raises(FileNotFoundError, match="METALM_DATA_DIR is unset"):
    qm9.load()
  arrays = _qm9_arrays()
  (tmp_path / "qm9").mkdir()
  path = tmp_path / "qm9" / "qm9.npz"
  np.savez(path, **{k: v for k, v in arrays.items() if k != "edge_attr"})
  with pytest.raises(ValueError, match=r"qm9\.npz has no \['edge_attr'\]"):
    _load_qm9(tmp_path)
  np.savez(path, **{**arrays, "y": arrays["y"][:, :12]})
  with pytest.raises(ValueError, match=r"y is float32 \[8, 12\]; expected numeric \[8, 19\]"):
    _load_qm9(tmp_path)
  bad = arrays["edge_index"].copy()
  bad[1, 0] = 3  # Molecule 0 has atoms 0..2.
  np.savez(path, **{**arrays, "edge_index": bad})
  with pytest.raises(ValueError, match=r"edge 0 \(of molecule 0\) joins atoms \[0, 3\]"):
    _load_qm9(tmp_path)
  path.write_bytes(b"not a zip")
  with pytest.raises(ValueError, match=r"cannot read .*qm9\.npz"):
    _load_qm9(tmp_path)
