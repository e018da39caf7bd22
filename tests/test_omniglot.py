"""Omniglot loader: splits, images, rotations, errors (Lake et al. 2015).

Tests that read the real files take the ``data_dir`` fixture and skip without
METALM_DATA_DIR; the first load in a process takes ~2.5 s, later ones use the
in-memory copy. Nothing here downloads: the TFDS path runs against a fake module.
"""

import os
import pathlib
import re
import sys
import types

import numpy as np
import pytest

from metalm.data import omniglot

VINYALS_CHARS = (1028, 172, 423)


def _load(data_dir, **kwargs):
  return omniglot.load(data_dir, **kwargs)


def test_vinyals_split_sizes_shapes_and_range(data_dir):
  splits = _load(data_dir)
  for split, chars in zip(splits, VINYALS_CHARS, strict=True):
    assert split.images.shape == (4 * chars, 20, 28, 28, 1)
    assert split.images.dtype == np.uint8
    assert len(split.char_ids) == len(split.rotations) == 4 * chars
    assert len(set(split.char_ids.tolist())) == chars
  images = splits.test.images
  assert images.min() == 0 and images.max() == 255
  # Ink (255) is sparse and the border is background.
  assert 0.03 < images.mean() / 255 < 0.2
  assert images[:, :, 0, :].mean() < 2


def test_finn_split_sizes():
  """Finn's 1200 training characters: 1100 meta-train + 100 meta-val, as in his code."""
  chars = _FakeCharacters()
  split = omniglot.finn_split(chars)
  assert [len(split[n]) for n in omniglot.SPLIT_NAMES] == [1100, 100, 423]
  all_train = omniglot.finn_split(chars, num_val=0)
  assert [len(all_train[n]) for n in omniglot.SPLIT_NAMES] == [1200, 0, 423]
  np.testing.assert_array_equal(all_train["test"], split["test"])


def test_finn_split_loads(data_dir):
  splits = _load(data_dir, split="finn")
  assert [len(s.char_ids) for s in splits] == [4 * 1100, 4 * 100, 4 * 423]
  assert len(splits.train.char_ids) + len(splits.val.char_ids) == 4 * 1200
  assert splits.val.images.shape[1:] == (20, 28, 28, 1)


@pytest.mark.parametrize("split", ["vinyals", "finn"])
def test_splits_are_class_disjoint_and_cover_all_characters(data_dir, split):
  ids = [set(s.char_ids.tolist()) for s in _load(data_dir, split=split)]
  assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
  assert set.union(*ids) == set(range(1, 1624))


def test_rotation_classes_are_rotations_of_the_base_class(data_dir):
  split = _load(data_dir).val
  num_chars = len(split.char_ids) // 4
  by_rotation = split.images.reshape(4, num_chars, 20, 28, 28, 1)
  ids = split.char_ids.reshape(4, num_chars)
  assert (ids == ids[0]).all()
  np.testing.assert_array_equal(split.rotations.reshape(4, num_chars)[:, 0],
                                [0, 90, 180, 270])
  for r in range(4):
    np.testing.assert_array_equal(by_rotation[r], np.rot90(by_rotation[0], r, axes=(2, 3)))
  assert not np.array_equal(by_rotation[1], by_rotation[0])


def test_images_are_area_averages_of_the_inverted_originals(data_dir):
  chars = omniglot.load_characters(data_dir)
  path = omniglot.omniglot_dir(data_dir) / "images_evaluation.npz"
  with np.load(path) as npz:
    white = npz["images"][-1, :3]  # Character 1623.
  expected = np.rint(omniglot.area_resize(~white, 28) * 255)
  np.testing.assert_array_equal(chars.images[-1, :3], expected)
  assert not chars.images.flags.writeable


def test_area_resize_is_a_block_mean_when_sizes_divide():
  x = np.random.default_rng(0).random((2, 12, 12))
  blocks = x.reshape(2, 4, 3, 4, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(omniglot.area_resize(x, 4), blocks, rtol=1e-5)
  x = np.random.default_rng(1).random((3, 105, 105))
  np.testing.assert_allclose(omniglot.area_resize(x, 28).mean(axis=(1, 2)),
                             x.mean(axis=(1, 2)), rtol=1e-5)


def test_missing_directory_names_the_path_and_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    omniglot.load(tmp_path)
  message = str(error.value)
  assert str(tmp_path / "omniglot") in message
  assert "METALM_DATA_DIR" in message and "pip install tensorflow" in message


def _copy_tree(data_dir, tmp_path, skip=()):
  """Links every source file into ``tmp_path/omniglot`` except ``skip``."""
  source = omniglot.omniglot_dir(data_dir)
  for name in omniglot.SHA256:
    if name not in skip:
      target = tmp_path / "omniglot" / name
      target.parent.mkdir(parents=True, exist_ok=True)
      target.symlink_to(source / name)
  return tmp_path / "omniglot"


def test_missing_file_is_named(data_dir, tmp_path):
  root = _copy_tree(data_dir, tmp_path, skip={"images_evaluation.npz"})
  with pytest.raises(FileNotFoundError, match=re.escape(str(root / "images_evaluation.npz"))):
    omniglot.load(tmp_path)


def test_corrupt_file_is_named(data_dir, tmp_path):
  root = _copy_tree(data_dir, tmp_path, skip={"images_background.npz"})
  (root / "images_background.npz").write_bytes(b"not an npz")
  path = re.escape(str(root / "images_background.npz"))
  with pytest.raises(ValueError, match=f"{path} has sha256 .* PROVENANCE.md"):
    omniglot.load(root)
  with pytest.raises(ValueError, match=f"cannot read 'images' from {path}"):
    omniglot.load(root, verify=False)


def test_hashes_match_provenance(data_dir):
  text = (omniglot.omniglot_dir(data_dir) / "PROVENANCE.md").read_text()
  listed = dict(re.findall(r"^\| `([^`]+)` \| +\d+ \| `([0-9a-f]{64})` \|$", text, re.M))
  assert {name: listed[name] for name in omniglot.SHA256} == omniglot.SHA256


def test_embedded_vinyals_split_matches_the_json_files(data_dir):
  chars = omniglot.load_characters(data_dir)
  embedded = omniglot._embedded_vinyals(chars.alphabets, chars.characters)
  np.testing.assert_array_equal(embedded, chars.vinyals)


def test_disk_cache_round_trip(data_dir, tmp_path, monkeypatch):
  chars = omniglot.load_characters(data_dir, cache_dir=tmp_path)
  (cache,) = tmp_path.glob("omniglot_28px_*.npz")
  monkeypatch.setattr(omniglot, "_MEMORY", {})
  monkeypatch.setattr(omniglot, "_build", lambda *a: pytest.fail("cache not used"))
  again = omniglot.load_characters(data_dir, cache_dir=tmp_path)
  for a, b in zip(chars, again, strict=True):
    np.testing.assert_array_equal(a, b)
  assert cache.stat().st_size < 30e6


class _FakeCharacters:
  """Names only: what the Finn split reads."""

  alphabets = np.array([f"a{i // 40:02d}" for i in range(omniglot.NUM_CHARACTERS)])
  characters = np.array([f"character{i % 40 + 1:02d}"
                         for i in range(omniglot.NUM_CHARACTERS)])


def test_tfds_path_with_a_fake_tfds(data_dir, monkeypatch):
  """``load_tfds`` parses TFDS's omniglot records (``label`` = global id - 1)."""
  chars = omniglot.load_characters(data_dir)
  names = [f"{a}_{int(c[len('character'):]) - 1}"
           for a, c in zip(chars.alphabets, chars.characters, strict=True)]
  white = np.full((105, 105, 3), 255, np.uint8)
  ink_of = {}
  for label in range(omniglot.NUM_CHARACTERS):
    image = white.copy()
    image[: 1 + label % 100, :7] = 0
    ink_of[label] = image

  def records(labels):
    return [{"image": ink_of[label], "label": label} for label in labels for _ in range(20)]

  builder = types.SimpleNamespace(
      download_and_prepare=lambda: None,
      info=types.SimpleNamespace(features={"label": types.SimpleNamespace(names=names)}),
      as_data_source=lambda: {
          "train": records(range(omniglot.NUM_BACKGROUND)),
          "test": records(range(omniglot.NUM_BACKGROUND, omniglot.NUM_CHARACTERS))})
  fake = types.ModuleType("tensorflow_datasets")
  fake.builder = lambda name, **kwargs: builder
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
  monkeypatch.delenv("METALM_DATA_DIR")
  splits = omniglot.load()  # No local directory: the TFDS path.
  local = _load(data_dir)
  for tfds_split, local_split in zip(splits, local, strict=True):
    np.testing.assert_array_equal(tfds_split.char_ids, local_split.char_ids)
  label = splits.test.char_ids[0] - 1
  expected = np.rint(omniglot.area_resize(ink_of[label][..., 0] < 128, 28) * 255)
  np.testing.assert_array_equal(splits.test.images[0, 5, ..., 0], expected)


def test_data_dir_may_be_the_omniglot_folder_itself(data_dir):
  root = omniglot.omniglot_dir(data_dir)
  assert omniglot.omniglot_dir(root) == root
  assert pathlib.Path(os.fspath(root)).name == "omniglot"
