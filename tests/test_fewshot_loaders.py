"""mini-ImageNet, tiered-ImageNet, CIFAR-FS and FC100 loaders on generated files.

Each fixture writes the real layout with every class of the published split but two or
three tiny images per class. Image ``e`` of global class ``g`` is one flat colour,
``_colour(g, e)``, so every loaded image says which class and file row it came from.
Nothing here downloads: the TFDS path reads a ``cifar100`` prepared from the same files.
"""

import csv
import io
import pickle
import re

import numpy as np
import pytest
from PIL import Image

from metalm.data import cifar_fs, episodic, fewshot_images, mini_imagenet, tiered_imagenet

SPLITS = fewshot_images.SPLIT_NAMES


def _colour(g, e):
  """A flat colour for image ``e`` of class ``g``, 16 levels apart (JPEG-safe)."""
  return np.array([16 * (g % 16) + 8, 16 * (g // 16 % 16) + 8, 16 * (g // 256) + 8 + 4 * e],
                  np.uint8)


def _image(g, e, size=84):
  return np.broadcast_to(_colour(g, e), (size, size, 3)).copy()


def _png(x):
  buffer = io.BytesIO()
  Image.fromarray(x).save(buffer, format="PNG")
  return buffer.getvalue()


def _dump(path, tree, protocol=2):
  path.write_bytes(pickle.dumps(tree, protocol=protocol))


def _link_tree(source, target, skip=()):
  """Links every file of ``source`` into ``target`` except ``skip``."""
  target.mkdir()
  for path in source.iterdir():
    if path.name not in skip:
      (target / path.name).symlink_to(path)
  return target


def _check_split_images(split, global_index, per_class, tol=0):
  """Every image of class ``c`` is ``_colour(global_index(name_c), e)``."""
  for c, name in enumerate(split.class_names):
    images = split.images[c]
    assert len(images) == per_class(c)
    for e, image in enumerate(images):
      diff = np.abs(image.astype(int) - _colour(global_index(name), e)).max()
      assert diff <= tol, (name, e, diff)


def _check_episode(images, image_shape):
  sampler = episodic.sampler(images, ways=5, shots=1, queries=1, seed=0)
  batch = sampler.batch(0, 2)
  assert batch.support_x.shape == (2, 5, *image_shape)
  assert batch.query_x.shape == (2, 5, *image_shape)
  assert batch.support_x.dtype == np.float32
  np.testing.assert_array_equal(batch.support_y, [[0, 1, 2, 3, 4]] * 2)


def _assert_disjoint(splits):
  names = [set(s.class_names.tolist()) for s in splits]
  assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])


# mini-ImageNet ---------------------------------------------------------------------

MINI_ALL = sorted(w for s in SPLITS for w in mini_imagenet.RAVI_CLASSES[s])
MINI_PER_CLASS = 3


@pytest.fixture(scope="module")
def mini_pickles(tmp_path_factory):
  """``mini-imagenet-cache-*.pkl`` with rows shuffled, so ``class_dict`` matters."""
  root = tmp_path_factory.mktemp("data") / "mini_imagenet"
  root.mkdir()
  rng = np.random.default_rng(0)
  for split in SPLITS:
    wnids = mini_imagenet.RAVI_CLASSES[split]
    perm = rng.permutation(len(wnids) * MINI_PER_CLASS)  # Row of (class, example).
    data = np.empty((len(perm), 84, 84, 3), np.uint8)
    class_dict = {}
    for c, wnid in enumerate(wnids[::-1]):  # Dict order is not the class order.
      rows = perm[[(c * MINI_PER_CLASS) + e for e in range(MINI_PER_CLASS)]]
      class_dict[wnid] = rows.tolist()
      for e, row in enumerate(rows):
        data[row] = _image(MINI_ALL.index(wnid), e)
    _dump(root / f"mini-imagenet-cache-{split}.pkl",
          {"image_data": data, "class_dict": class_dict}, protocol=4)
  return root


@pytest.fixture(scope="module")
def mini_csv(tmp_path_factory):
  """Ravi's ``images/*.jpg`` + CSVs; rows shuffled across classes; some not 84x84."""
  root = tmp_path_factory.mktemp("data") / "mini_imagenet"
  (root / "images").mkdir(parents=True)
  rng = np.random.default_rng(1)
  for split in SPLITS:
    rows = []
    for wnid in mini_imagenet.RAVI_CLASSES[split]:
      g = MINI_ALL.index(wnid)
      for e in range(MINI_PER_CLASS):
        name = f"{wnid}{e:08d}.jpg"
        size = (84, 84) if e else (60, 40)  # Resized to 84x84 on load.
        Image.fromarray(_image(g, e, 84)).resize(size).save(root / "images" / name,
                                                            quality=95)
        rows.append((name, wnid))
    # Classes interleaved at random, each class's images in order (rows are class-major).
    order = sorted(range(len(rows)), key=lambda i: (i % MINI_PER_CLASS, rng.random()))
    with open(root / f"{split}.csv", "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["filename", "label"])
      writer.writerows(rows[i] for i in order)
  return root


@pytest.mark.parametrize("layout", ["pickle", "csv"])
def test_mini_imagenet_layouts(mini_pickles, mini_csv, layout):
  root = mini_pickles if layout == "pickle" else mini_csv
  splits = mini_imagenet.load(root.parent, layout="auto", num_threads=2)
  for split, name in zip(splits, SPLITS, strict=True):
    assert split.images.shape == (mini_imagenet.NUM_CLASSES[name], MINI_PER_CLASS, 84, 84, 3)
    assert split.images.dtype == np.uint8
    assert split.class_names.tolist() == list(mini_imagenet.RAVI_CLASSES[name])
    assert (split.superclasses == "").all()
    _check_split_images(split, MINI_ALL.index, lambda c: MINI_PER_CLASS,
                        tol=0 if layout == "pickle" else 3)
  _assert_disjoint(splits)
  _check_episode(splits.train.images, (84, 84, 3))


def test_mini_imagenet_resizes_and_takes_the_folder_itself(mini_pickles):
  splits = mini_imagenet.load(mini_pickles, layout="pickle", image_size=32)
  assert splits.val.images.shape == (16, MINI_PER_CLASS, 32, 32, 3)
  _check_split_images(splits.val, MINI_ALL.index, lambda c: MINI_PER_CLASS)


def test_mini_imagenet_the_ravi_split_is_100_distinct_classes():
  assert len(MINI_ALL) == len(set(MINI_ALL)) == 100
  assert [len(mini_imagenet.RAVI_CLASSES[s]) for s in SPLITS] == [64, 16, 20]


def test_mini_imagenet_missing_file_is_named(mini_pickles, tmp_path):
  root = _link_tree(mini_pickles, tmp_path / "mini_imagenet",
                    skip={"mini-imagenet-cache-val.pkl"})
  path = re.escape(str(root / "mini-imagenet-cache-val.pkl"))
  with pytest.raises(FileNotFoundError, match=f"{path} does not exist.*class_dict"):
    mini_imagenet.load(tmp_path, layout="pickle")
  with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "x" / "mini_imagenet"))):
    mini_imagenet.load(tmp_path / "x")


def test_mini_imagenet_no_data_dir_names_the_variable(monkeypatch):
  monkeypatch.delenv("METALM_DATA_DIR", raising=False)
  with pytest.raises(FileNotFoundError, match="METALM_DATA_DIR is unset"):
    mini_imagenet.load()


def test_mini_imagenet_malformed_pickles_are_named(mini_pickles, tmp_path):
  root = _link_tree(mini_pickles, tmp_path / "mini_imagenet",
                    skip={"mini-imagenet-cache-test.pkl"})
  path = root / "mini-imagenet-cache-test.pkl"
  path.write_text("<html>quota exceeded</html>")
  with pytest.raises(ValueError, match=f"cannot unpickle {re.escape(str(path))}.*HTML"):
    mini_imagenet.load(root)
  _dump(path, {"image_data": np.zeros((3, 84, 84, 3), np.uint8)})
  with pytest.raises(ValueError, match=f"{re.escape(str(path))} has no 'class_dict'"):
    mini_imagenet.load(root)
  wnids = mini_imagenet.RAVI_CLASSES["test"][:19] + ("n99999999",)
  _dump(path, {"image_data": np.zeros((20, 84, 84, 3), np.uint8),
               "class_dict": {w: [i] for i, w in enumerate(wnids)}})
  with pytest.raises(ValueError, match=r"test.pkl: expected the 20 classes.*n07613480.*"
                                       r"n99999999"):
    mini_imagenet.load(root)
  _dump(path, {"image_data": np.zeros((20, 84, 84, 3), np.uint8),
               "class_dict": {w: [0] for w in mini_imagenet.RAVI_CLASSES["test"]}})
  with pytest.raises(ValueError, match="exactly one class"):
    mini_imagenet.load(root)


def test_mini_imagenet_malformed_csv_files_are_named(mini_csv, tmp_path):
  root = _link_tree(mini_csv, tmp_path / "mini_imagenet", skip={"val.csv", "images"})
  (root / "images").mkdir()
  for image in (mini_csv / "images").iterdir():
    (root / "images" / image.name).symlink_to(image)
  csv_path = root / "val.csv"
  lines = (mini_csv / "val.csv").read_text().splitlines()
  csv_path.write_text("\n".join(["name,wnid", *lines[1:]]))
  with pytest.raises(ValueError, match=f"{re.escape(str(csv_path))} must have the header"):
    mini_imagenet.load(root, layout="csv")
  first = lines[1].split(",")[0]
  csv_path.write_text("\n".join([lines[0], lines[1].replace(first, "gone.jpg"), *lines[2:]]))
  with pytest.raises(FileNotFoundError,
                     match=f"{re.escape(str(root / 'images' / 'gone.jpg'))} \\(listed in "
                           f"{re.escape(str(csv_path))}\\) does not exist"):
    mini_imagenet.load(root, layout="csv")
  csv_path.write_text("\n".join(lines))
  (root / "images" / first).unlink()
  (root / "images" / first).write_bytes(b"not a jpeg")
  with pytest.raises(ValueError, match=f"cannot decode {re.escape(str(root / 'images' / first))}"):
    mini_imagenet.load(root, layout="csv", num_threads=1)


def test_mini_imagenet_rejects_unknown_options(mini_pickles):
  with pytest.raises(ValueError, match="split 'vinyals'; use 'ravi'"):
    mini_imagenet.load(mini_pickles, split="vinyals")
  with pytest.raises(ValueError, match="layout 'png'"):
    mini_imagenet.load(mini_pickles, layout="png")


def test_sha256_is_checked_when_given(mini_pickles):
  with pytest.raises(ValueError, match="mini-imagenet-cache-train.pkl has sha256 .*, "
                                       "expected 00"):
    mini_imagenet.load(mini_pickles, sha256={"mini-imagenet-cache-train.pkl": "00"})


# tiered-ImageNet -------------------------------------------------------------------

TIERED_CLASSES = tiered_imagenet.NUM_CLASSES
TIERED_OFFSET = {"train": 0, "val": 351, "test": 448}  # Global class index of class 0.


def _tiered_count(split, c):
  return 3 if c == 0 else 2  # Ragged: class 0 of each split has one more image.


@pytest.fixture(scope="module")
def tiered_root(tmp_path_factory):
  """Both layouts side by side; label order shuffled; the .npz in BGR like Ren's."""
  root = tmp_path_factory.mktemp("data") / "tiered_imagenet"
  root.mkdir()
  rng = np.random.default_rng(2)
  for split in SPLITS:
    num_classes, num_cats = TIERED_CLASSES[split], tiered_imagenet.NUM_CATEGORIES[split]
    pairs = [(c, e) for c in range(num_classes) for e in range(_tiered_count(split, c))]
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    pairs.sort(key=lambda p: p[1])  # Shuffled classes, each class's images in order.
    images = np.stack([_image(TIERED_OFFSET[split] + c, e) for c, e in pairs])
    labels = np.array([c for c, _ in pairs])
    _dump(root / f"{split}_labels.pkl", {
        "label_specific": labels,
        "label_specific_str": [f"n{TIERED_OFFSET[split] + c:08d}" for c in range(num_classes)],
        "label_general": labels % num_cats,
        "label_general_str": [f"{split}_category{k}" for k in range(num_cats)]})
    _dump(root / f"{split}_images_png.pkl",
          [np.frombuffer(_png(x), np.uint8) for x in images])
    np.savez(root / f"{split}_images.npz", images=images[..., ::-1])
  return root


def _tiered_index(name):
  return int(name[1:])


@pytest.mark.parametrize("layout", ["png", "npz"])
def test_tiered_imagenet_layouts(tiered_root, layout):
  splits = tiered_imagenet.load(tiered_root, layout=layout, num_threads=2)
  for split, name in zip(splits, SPLITS, strict=True):
    assert isinstance(split.images, tuple) and len(split.images) == TIERED_CLASSES[name]
    assert all(x.dtype == np.uint8 and x.shape[1:] == (84, 84, 3) for x in split.images)
    assert len(split.class_names) == TIERED_CLASSES[name]
    _check_split_images(split, _tiered_index, lambda c, name=name: _tiered_count(name, c))
    categories = {f"{name}_category{c % tiered_imagenet.NUM_CATEGORIES[name]}"
                  for c in range(TIERED_CLASSES[name])}
    assert set(split.superclasses.tolist()) == categories
    assert split.superclasses[5] == f"{name}_category{5 % tiered_imagenet.NUM_CATEGORIES[name]}"
  _assert_disjoint(splits)
  _check_episode(splits.train.images, (84, 84, 3))


def test_tiered_imagenet_examples_per_class_stacks(tiered_root):
  splits = tiered_imagenet.load(tiered_root, layout="png", examples_per_class=2,
                                image_size=40)
  assert splits.test.images.shape == (160, 2, 40, 40, 3)
  _check_split_images(splits.test, _tiered_index, lambda c: 2)
  with pytest.raises(ValueError, match=r"class n00000001 of .*train_labels.pkl has 2 images"):
    tiered_imagenet.load(tiered_root, examples_per_class=3)


def test_tiered_imagenet_malformed_files_are_named(tiered_root, tmp_path):
  root = _link_tree(tiered_root, tmp_path / "tiered_imagenet",
                    skip={"val_labels.pkl", "test_images_png.pkl"})
  with pytest.raises(FileNotFoundError, match=re.escape(str(root / "val_labels.pkl"))):
    tiered_imagenet.load(root)
  labels = root / "val_labels.pkl"
  _dump(labels, {"label_specific": np.arange(96)})
  with pytest.raises(ValueError, match=f"{re.escape(str(labels))} has 96 classes; .* 97"):
    tiered_imagenet.load(root)
  _dump(labels, {"label_specific": np.arange(98) % 97 * (np.arange(98) != 3)})
  with pytest.raises(ValueError, match="must use every class 0..96"):
    tiered_imagenet.load(root)
  labels.unlink()
  labels.symlink_to(tiered_root / "val_labels.pkl")
  blobs = pickle.loads((tiered_root / "test_images_png.pkl").read_bytes())
  blobs[7] = np.frombuffer(b"garbage", np.uint8)
  _dump(root / "test_images_png.pkl", blobs)
  with pytest.raises(ValueError, match=f"cannot decode image 7 of "
                                       f"{re.escape(str(root / 'test_images_png.pkl'))}"):
    tiered_imagenet.load(root, num_threads=1)
  _dump(root / "test_images_png.pkl", blobs[:-1])
  with pytest.raises(ValueError, match=r"test_images_png.pkl holds a list of 320; expected "
                                       r"a list of 321"):
    tiered_imagenet.load(root)


# CIFAR-FS and FC100 ----------------------------------------------------------------

# CIFAR-100's superclasses and their classes (Krizhevsky 2009), both alphabetical as in
# its meta file.
CIFAR_SUPERCLASSES = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}
FINE = sorted(n for names in CIFAR_SUPERCLASSES.values() for n in names.split())
COARSE = sorted(CIFAR_SUPERCLASSES)
COARSE_OF = {n: COARSE.index(s) for s, names in CIFAR_SUPERCLASSES.items()
             for n in names.split()}
CIFAR_TRAIN, CIFAR_TEST = 2, 1  # Images per class in each file.


def _cifar_part(per_class, first, rng):
  """Images, fine and coarse labels; classes interleaved in a random order."""
  pairs = [(c, first + e) for e in range(per_class) for c in rng.permutation(100)]
  images = np.stack([_image(c, e, 32) for c, e in pairs])
  fine = [int(c) for c, _ in pairs]
  return images, fine, [COARSE_OF[FINE[c]] for c in fine]


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
  """``cifar-100-python/{train,test,meta}`` as Krizhevsky's pickles hold them."""
  root = tmp_path_factory.mktemp("data") / "cifar-100-python"
  root.mkdir()
  rng = np.random.default_rng(3)
  _dump(root / "meta", {"fine_label_names": FINE, "coarse_label_names": COARSE})
  for name, per_class, first in (("train", CIFAR_TRAIN, 0), ("test", CIFAR_TEST, CIFAR_TRAIN)):
    images, fine, coarse = _cifar_part(per_class, first, rng)
    _dump(root / name, {"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),
                        "fine_labels": fine, "coarse_labels": coarse,
                        "batch_label": f"{name} batch", "filenames": [f"{i}.png" for i in
                                                                      range(len(fine))]})
  return root


def test_cifar_fs_split(cifar_root):
  splits = cifar_fs.load(cifar_root.parent)
  for split, name in zip(splits, SPLITS, strict=True):
    assert split.images.shape == (len(cifar_fs.CIFAR_FS_CLASSES[name]),
                                  CIFAR_TRAIN + CIFAR_TEST, 32, 32, 3)
    assert split.images.dtype == np.uint8
    assert split.class_names.tolist() == list(cifar_fs.CIFAR_FS_CLASSES[name])
    assert [COARSE[COARSE_OF[n]] for n in split.class_names] == split.superclasses.tolist()
    _check_split_images(split, FINE.index, lambda c: CIFAR_TRAIN + CIFAR_TEST)
  assert [len(s.class_names) for s in splits] == [64, 16, 20]
  _assert_disjoint(splits)
  assert set().union(*(s.class_names.tolist() for s in splits)) == set(FINE)
  _check_episode(splits.train.images, (32, 32, 3))


def test_fc100_split_by_superclass(cifar_root):
  splits = cifar_fs.load_fc100(cifar_root)  # The folder itself works too.
  expected_coarse = {"train": [1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19],
                     "val": [8, 11, 13, 16], "test": [0, 7, 12, 14]}
  for split, name in zip(splits, SPLITS, strict=True):
    assert split.images.shape[0] == {"train": 60, "val": 20, "test": 20}[name]
    assert sorted({COARSE.index(s) for s in split.superclasses}) == expected_coarse[name]
    assert split.class_names.tolist() == sorted(
        n for n in FINE if COARSE_OF[n] in expected_coarse[name])
    _check_split_images(split, FINE.index, lambda c: CIFAR_TRAIN + CIFAR_TEST)
  _assert_disjoint(splits)
  _check_episode(splits.val.images, (32, 32, 3))


def test_cifar_missing_and_malformed_files_are_named(cifar_root, tmp_path):
  root = _link_tree(cifar_root, tmp_path / "cifar-100-python", skip={"meta", "test"})
  with pytest.raises(FileNotFoundError, match=re.escape(str(root / "test"))):
    cifar_fs.load(tmp_path)
  (root / "test").symlink_to(cifar_root / "test")
  with pytest.raises(FileNotFoundError, match=re.escape(str(root / "meta"))):
    cifar_fs.load(tmp_path)
  _dump(root / "meta", {"fine_label_names": FINE})
  with pytest.raises(ValueError, match=f"{re.escape(str(root / 'meta'))} has no "
                                       "'coarse_label_names'"):
    cifar_fs.load(tmp_path)
  (root / "meta").unlink()
  (root / "meta").symlink_to(cifar_root / "meta")
  (root / "train").unlink()
  _dump(root / "train", {"data": np.zeros((4, 1024), np.uint8), "fine_labels": [0] * 4,
                         "coarse_labels": [0] * 4})
  with pytest.raises(ValueError, match=f"{re.escape(str(root / 'train'))} holds data "
                                       r"uint8 \(4, 1024\)"):
    cifar_fs.load(tmp_path)


def test_cifar_rejects_unknown_splits(cifar_root):
  with pytest.raises(ValueError, match="load_fc100"):
    cifar_fs.load(cifar_root, split="oreshkin")
  with pytest.raises(ValueError, match=r"unknown classes \['unicorn'\]"):
    cifar_fs.load(cifar_root, split={"train": ["unicorn"], "val": [], "test": []})


def test_cifar_fs_classes_are_cifar100(cifar_root):
  names = [n for s in SPLITS for n in cifar_fs.CIFAR_FS_CLASSES[s]]
  assert sorted(names) == FINE
  assert {n for s in cifar_fs.FC100_SUPERCLASSES.values() for n in s} == set(COARSE)


def test_cifar_tfds_path_reads_an_array_record_cifar100(cifar_root, tmp_path):
  """A ``cifar100`` prepared from the same files reads back to the same arrays."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.image_classification import cifar

  def records(name, prefix):
    tree = pickle.loads((cifar_root / name).read_bytes())
    images = tree["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    for i, (image, fine, coarse) in enumerate(
        zip(images, tree["fine_labels"], tree["coarse_labels"], strict=True)):
      yield i, {"id": f"{prefix}{i:05d}", "image": _png(image), "label": fine,
                "coarse_label": coarse}

  class Cifar100(cifar.Cifar100, skip_registration=True):
    """TFDS's cifar100, generated from local files with PNG-encoded images."""

    def _split_generators(self, dl_manager):
      del dl_manager
      self.info.features["label"].names = FINE
      self.info.features["coarse_label"].names = COARSE
      return {"train": records("train", "train"), "test": records("test", "test")}

  Cifar100(data_dir=tmp_path, file_format="array_record").download_and_prepare()
  assert tfds.builder("cifar100", data_dir=tmp_path).is_prepared()
  from_tfds = cifar_fs.load_fc100(tfds_data_dir=tmp_path)
  local = cifar_fs.load_fc100(cifar_root)
  for a, b in zip(from_tfds, local, strict=True):
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.class_names, b.class_names)
    np.testing.assert_array_equal(a.superclasses, b.superclasses)


def test_cifar_tfds_path_without_a_prepared_dir_says_how(tmp_path, monkeypatch):
  monkeypatch.delenv("METALM_DATA_DIR", raising=False)
  with pytest.raises(FileNotFoundError, match="cifar100 in .* is not prepared.*"
                                              "file_format='array_record'"):
    cifar_fs.load(tfds_data_dir=tmp_path)


# Shared pieces ---------------------------------------------------------------------


def test_pickles_that_would_run_code_are_refused(tmp_path):
  class Exploit:
    def __reduce__(self):
      return (print, ("ran",))

  path = tmp_path / "evil.pkl"
  _dump(path, {"image_data": Exploit()}, protocol=4)
  with pytest.raises(ValueError, match="refusing to load builtins.print"):
    fewshot_images.read_pickle(path, dataset="test", layout="anything")


def test_pickles_written_by_numpy_1_load(tmp_path):
  """Python-2-era pickles name ``numpy.core``; numpy 2 renamed it ``numpy._core``."""
  array = np.arange(12, dtype=np.uint8).reshape(3, 4)
  data = pickle.dumps({"a": array, "b": [np.int64(5)]}, protocol=2)
  path = tmp_path / "old.pkl"
  path.write_bytes(data.replace(b"numpy._core", b"numpy.core"))
  tree = fewshot_images.read_pickle(path, dataset="test", layout="anything")
  np.testing.assert_array_equal(tree["a"], array)
  assert tree["b"] == [5]
