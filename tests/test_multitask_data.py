"""Multitask data: MNIST IDX, Multi-MNIST composites, CoNLL-2000 and chunk F1.

Tests marked by the ``data_dir`` fixture read the real files under
``$METALM_DATA_DIR`` (and skip without it); the others write small files of the same
formats, to check the error paths and the exact construction.
"""

import gzip
import hashlib
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from metalm.data import conll2000, mnist, multi_mnist
from metalm.eval import chunking

# --- MNIST / Fashion-MNIST -------------------------------------------------------------

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("name", mnist.NAMES)
def test_mnist_real_files(data_dir, name):
  train = mnist.load(name, "train", data_dir=data_dir)
  test = mnist.load(name, "test", data_dir=data_dir)
  assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
  assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32
  assert train.images.max() == 255 and train.images.min() == 0
  counts = np.bincount(train.labels), np.bincount(test.labels)
  if name == "mnist":  # As in mnist/PROVENANCE.md.
    assert counts[0].tolist() == MNIST_TRAIN_COUNTS
    assert counts[1].tolist() == MNIST_TEST_COUNTS
  else:
    assert (counts[0] == 6000).all() and (counts[1] == 1000).all()
  assert not train.images.flags.writeable


def _idx(array: np.ndarray) -> bytes:
  code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
  array = array.astype(array.dtype.newbyteorder(">"))
  header = bytes([0, 0, code[array.dtype.newbyteorder(">")], array.ndim])
  return header + np.array(array.shape, ">i4").tobytes() + array.tobytes()


def _write_mnist(root, split, images, labels, gz=True):
  root.mkdir(parents=True, exist_ok=True)
  for base, array in zip(mnist.FILES[split], (images, labels), strict=True):
    data = _idx(array)
    if gz:
      (root / (base + ".gz")).write_bytes(gzip.compress(data))
    else:
      (root / base).write_bytes(data)


@pytest.mark.parametrize("array", [
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    np.array([-5, 0, 7], np.int32),
    np.linspace(0, 1, 6, dtype=np.float32).reshape(3, 2)])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, array, gz):
  path = tmp_path / "x.idx"
  path.write_bytes(gzip.compress(_idx(array)) if gz else _idx(array))
  np.testing.assert_array_equal(mnist.read_idx(path), array)


def test_mnist_missing_files_name_the_path_and_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="METALM_DATA_DIR") as info:
    mnist.load("mnist", "train", data_dir=tmp_path)
  message = str(info.value)
  assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in message
  assert "ossci-datasets" in message and "load_tfds" in message
  with pytest.raises(FileNotFoundError, match="zalandoresearch"):
    mnist.load("fashion_mnist", "test", data_dir=tmp_path)


def test_idx_errors_name_the_file(tmp_path):
  labels = np.zeros(10, np.uint8)
  truncated = tmp_path / "truncated.idx"
  truncated.write_bytes(_idx(np.zeros((5, 28, 28), np.uint8))[:-100])
  with pytest.raises(ValueError, match=f"{truncated}.*truncated.*3936"):
    mnist.read_idx(truncated)
  html = tmp_path / "html.idx.gz"
  html.write_bytes(gzip.compress(b"<!DOCTYPE html><html>quota exceeded</html>"))
  with pytest.raises(ValueError, match=f"{html} is not an IDX file.*HTML"):
    mnist.read_idx(html)
  broken_gzip = tmp_path / "broken.gz"
  broken_gzip.write_bytes(gzip.compress(_idx(labels) * 50)[:-20])
  with pytest.raises(ValueError, match=f"{broken_gzip} is a corrupt or truncated gzip"):
    mnist.read_idx(broken_gzip)


def test_mnist_wrong_shape_and_hash_name_the_file(tmp_path):
  root = tmp_path / "mnist"
  _write_mnist(root, "test", np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.uint8))
  with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz has sha256.*verify=False"):
    mnist.load("mnist", "test", data_dir=tmp_path)
  with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz holds uint8 \(3, 28, 28\)"):
    mnist.load("mnist", "test", data_dir=tmp_path, verify=False)


def test_mnist_reads_uncompressed_files_and_checks_labels(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (10000, 28, 28), dtype=np.uint8)
  labels = np.arange(10000) % 10
  _write_mnist(tmp_path, "test", images, labels.astype(np.uint8), gz=False)
  loaded = mnist.load("fashion_mnist", "test", data_dir=tmp_path, verify=False)
  np.testing.assert_array_equal(loaded.images, images)
  np.testing.assert_array_equal(loaded.labels, labels)
  _write_mnist(tmp_path, "test", images, np.full(10000, 10, np.uint8), gz=False)
  with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte holds.*maximum 10"):
    mnist.load("fashion_mnist", "test", data_dir=tmp_path, verify=False)


# --- Multi-MNIST --------------------------------------------------------------------------


def _place(item, corner, size=36):
  canvas = np.zeros((size, size), np.int32)
  canvas[corner[0]:corner[0] + 28, corner[1]:corner[1] + 28] = item
  return canvas


def _check_composites(c, left, right, *, max_shift=4, right_corner=8):
  """Each composite is the max of its two items, placed at its recorded corners."""
  canvas = c.x[..., 0]
  if canvas.dtype != np.uint8:
    canvas = np.rint(canvas * 255).astype(np.int32)
  np.testing.assert_array_equal(c.y["left"], left.labels[c.left_index])
  np.testing.assert_array_equal(c.y["right"], right.labels[c.right_index])
  assert (c.offsets[:, :2] >= 0).all() and (c.offsets[:, :2] <= max_shift).all()
  assert (c.offsets[:, 2:] >= right_corner - max_shift).all()
  assert (c.offsets[:, 2:] <= right_corner).all()
  for i in range(0, len(canvas), max(1, len(canvas) // 50)):
    a = _place(left.images[c.left_index[i]], c.offsets[i, :2])
    b = _place(right.images[c.right_index[i]], c.offsets[i, 2:])
    np.testing.assert_array_equal(canvas[i], np.maximum(a, b))


@pytest.mark.parametrize("name", list(multi_mnist.VARIANTS))
def test_multi_mnist_real_files(data_dir, name):
  c = multi_mnist.load(name, "test", data_dir=data_dir, num_examples=3000, seed=1)
  assert c.x.shape == (3000, 36, 36, 1) and c.x.dtype == np.float32
  assert 0 <= c.x.min() and c.x.max() == 1
  assert set(c.y) == set(multi_mnist.TASKS)
  for labels in c.y.values():
    assert labels.shape == (3000,) and labels.dtype == np.int32
    assert set(np.unique(labels)) == set(range(10))
  left_source, right_source = (mnist.load(s, "test", data_dir=data_dir)
                               for s in multi_mnist.VARIANTS[name])
  _check_composites(c, left_source, right_source)
  # Ink in the first 4 rows is the left item's; in the last 4 rows, the right item's.
  for i in range(0, 3000, 97):
    top_rows = _place(left_source.images[c.left_index[i]], c.offsets[i, :2])[:4]
    bottom_rows = _place(right_source.images[c.right_index[i]], c.offsets[i, 2:])[32:]
    np.testing.assert_array_equal(np.rint(c.x[i, :4, :, 0] * 255), top_rows)
    np.testing.assert_array_equal(np.rint(c.x[i, 32:, :, 0] * 255), bottom_rows)


def test_multi_mnist_seeds_sizes_and_resize(data_dir):
  a = multi_mnist.load("multi_mnist", "test", data_dir=data_dir, num_examples=2000)
  b = multi_mnist.load("multi_mnist", "test", data_dir=data_dir, num_examples=2000)
  c = multi_mnist.load("multi_mnist", "test", data_dir=data_dir, num_examples=2000, seed=1)
  assert all(np.array_equal(u, v) for u, v in zip(a[2:], b[2:], strict=True))
  np.testing.assert_array_equal(a.x, b.x)
  assert not np.array_equal(a.left_index, c.left_index)
  # The first composites do not depend on how many are built.
  short = multi_mnist.load("multi_mnist", "test", data_dir=data_dir, num_examples=500)
  np.testing.assert_array_equal(short.x, a.x[:500])
  np.testing.assert_array_equal(short.y["right"], a.y["right"][:500])
  # image_size=28 is PIL's NEAREST resize of the uint8 canvas.
  small = multi_mnist.load("multi_mnist", "test", data_dir=data_dir, num_examples=50,
                           image_size=28, dtype=np.uint8)
  big = multi_mnist.load("multi_mnist", "test", data_dir=data_dir, num_examples=50,
                         dtype=np.uint8)
  pil = [np.asarray(Image.fromarray(x[..., 0]).resize((28, 28), Image.NEAREST))
         for x in big.x]
  np.testing.assert_array_equal(small.x[..., 0], np.stack(pil))
  # Sener & Koltun's layout: left at (0, 0), right at (6, 6), no shifts.
  sk = multi_mnist.load("multi_mnist", "test", data_dir=data_dir, num_examples=20,
                        max_shift=0, right_corner=6, image_size=28)
  assert (sk.offsets == [0, 0, 6, 6]).all() and sk.x.shape == (20, 28, 28, 1)


def test_multi_mnist_build_time(data_dir):
  mnist.load("mnist", "train", data_dir=data_dir)  # Reading is not building.
  start = time.perf_counter()
  c = multi_mnist.load("multi_mnist", "train", data_dir=data_dir, num_examples=60000)
  seconds = time.perf_counter() - start
  assert c.x.shape == (60000, 36, 36, 1)
  # Each training image is the left item once and the right item once.
  assert np.array_equal(np.sort(c.left_index), np.arange(60000))
  assert np.array_equal(np.sort(c.right_index), np.arange(60000))
  assert seconds < 20, f"building 60000 composites took {seconds:.1f}s"


def _toy(n, value_offset=0):
  """n items, item i a 20x20 square of value i + 1 + value_offset inside 28x28."""
  images = np.zeros((n, 28, 28), np.uint8)
  images[:, 4:24, 4:24] = (np.arange(n) + 1 + value_offset)[:, None, None]
  return mnist.Arrays(images, (np.arange(n) % 10).astype(np.int32))


def test_make_composes_max_and_sum_on_generated_items():
  left, right = _toy(7), _toy(5, value_offset=250)
  rng = np.random.default_rng(3)
  c = multi_mnist.make(left, right, rng, num_examples=40, dtype=np.uint8)
  _check_composites(c, left, right)
  assert sorted(np.bincount(c.left_index).tolist()) == [5, 5, 6, 6, 6, 6, 6]  # 40 = 5*7 + 5.
  assert np.bincount(c.right_index).tolist() == [8] * 5
  s = multi_mnist.make(left, right, np.random.default_rng(3), num_examples=40,
                       combine="sum", dtype=np.uint8)
  np.testing.assert_array_equal(s.offsets, c.offsets)
  for i in range(40):
    a = _place(left.images[c.left_index[i]], c.offsets[i, :2])
    b = _place(right.images[c.right_index[i]], c.offsets[i, 2:])
    np.testing.assert_array_equal(s.x[i, ..., 0], np.minimum(a + b, 255))
  assert (s.x == 255).any()  # Overlaps of 251+ and 1+ clip.
  with pytest.raises(ValueError, match="max_shift"):
    multi_mnist.make(left, right, rng, num_examples=4, max_shift=9)
  with pytest.raises(ValueError, match="combine"):
    multi_mnist.make(left, right, rng, num_examples=4, combine="mean")


def test_multi_mnist_missing_source_names_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "mnist")):
    multi_mnist.load("multi_fashion_mnist", "test", data_dir=tmp_path)
  with pytest.raises(ValueError, match="Unknown data set"):
    multi_mnist.load("multi_cifar", "test", data_dir=tmp_path)


# --- CoNLL-2000 ---------------------------------------------------------------------------


def test_conll2000_real_file(data_dir):
  data = conll2000.load(data_dir)
  assert len(data.train.sentences) == 8936 and len(data.test.sentences) == 2012
  assert data.train.mask.sum() == 211727 and data.test.mask.sum() == 47377
  assert data.train.tokens.shape == (8936, 78) and data.test.tokens.shape == (2012, 78)
  for array in (data.train.tokens, data.train.pos, data.train.chunk):
    assert array.dtype == np.int32 and (array[~data.train.mask] == 0).all()
  assert len(data.vocab.pos) == 44
  assert len(data.vocab.chunk) == 23  # O + B/I of 11 types (22 tags occur in train).
  assert len({c for s in data.train.sentences for _, _, c in s}) == 22
  # Ids decode back to the sentences.
  for i in (0, 100, 2011):
    sentence, n = data.test.sentences[i], len(data.test.sentences[i])
    assert [data.vocab.chunk[j] for j in data.test.chunk[i, :n]] == [c for *_, c in sentence]
    assert [data.vocab.pos[j] for j in data.test.pos[i, :n]] == [p for _, p, _ in sentence]
  assert (data.test.tokens[data.test.mask] == 1).any()  # Unknown test words.
  gold = [[c for *_, c in s] for s in data.test.sentences]
  perfect = chunking.chunk_f1(gold, gold)
  assert perfect.f1 == 100 and perfect.num_gold == 23852  # conlleval's phrase count.
  by_ids = chunking.chunk_f1_ids(data.test.chunk, data.test.chunk, data.test.mask,
                                 data.vocab.chunk)
  assert by_ids[:7] == perfect[:7]


def test_conll2000_pos_baseline_matches_the_shared_task(data_dir):
  """The shared task's baseline (each POS tag's most frequent chunk tag in training)
  scored 72.58 / 82.14 / 77.07 (Tjong Kim Sang & Buchholz 2000, arXiv:cs/0009008)."""
  data = conll2000.load(data_dir)
  ids = np.zeros((len(data.vocab.pos), len(data.vocab.chunk)), np.int64)
  np.add.at(ids, (data.train.pos[data.train.mask], data.train.chunk[data.train.mask]), 1)
  pred = np.argmax(ids, axis=1)[data.test.pos]
  scores = chunking.chunk_f1_ids(pred, data.test.chunk, data.test.mask, data.vocab.chunk)
  assert [round(s, 2) for s in scores[:3]] == [72.58, 82.14, 77.07]


def test_conll2000_options(data_dir):
  cased = conll2000.load(data_dir)
  lower = conll2000.load(data_dir, lowercase=True, min_count=2, max_len=20)
  assert len(lower.vocab.words) < len(cased.vocab.words)
  assert all(w == w.lower() for w in lower.vocab.words)
  assert lower.train.tokens.shape == (8936, 20)
  assert lower.train.mask.sum(1).max() == 20 and len(lower.train.sentences[0]) > 20


def _conll_zip(path, train, test, names=conll2000.MEMBERS):
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("conll2000/", "")
    for split, text in (("train", train), ("test", test)):
      if text is not None:
        archive.writestr(names[split], text)
  return path


TRAIN = "He PRP B-NP\nreckons VBZ B-VP\nthe DT B-NP\ndeficit NN I-NP\n. . O\n\nHe PRP B-NP\n"
TEST = "She PRP B-NP\nreckons VBZ I-VP\n\n"


def test_conll2000_generated_zip(tmp_path):
  _conll_zip(tmp_path / "conll2000.zip", TRAIN, TEST)
  data = conll2000.load(tmp_path, verify=False)
  assert [len(s) for s in data.train.sentences] == [5, 1]  # No final empty line needed.
  assert data.vocab.words == ("<pad>", "<unk>", "He", ".", "deficit", "reckons", "the")
  assert data.vocab.chunk == ("O", "B-NP", "I-NP", "B-VP", "I-VP")
  assert data.train.tokens.shape == (2, 5)
  np.testing.assert_array_equal(data.train.chunk[0], [1, 3, 1, 2, 0])
  np.testing.assert_array_equal(data.train.mask[1], [1, 0, 0, 0, 0])
  with pytest.raises(ValueError, match="sha256.*verify=False"):
    conll2000.load(tmp_path)
  # A test tag unseen in training is named.
  _conll_zip(tmp_path / "conll2000.zip", TRAIN, TEST + "1. LS B-NP\n")
  with pytest.raises(ValueError, match="sentence 1 has the POS tag 'LS'"):
    conll2000.load(tmp_path, verify=False)


def test_conll2000_errors_name_the_file(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    conll2000.load(tmp_path)
  assert str(tmp_path / "nltk_data/corpora/conll2000.zip") in str(info.value)
  assert "nltk.downloader" in str(info.value)
  path = _conll_zip(tmp_path / "conll2000.zip", TRAIN * 200, TEST)
  truncated = tmp_path / "truncated" / "conll2000.zip"
  truncated.parent.mkdir()
  truncated.write_bytes(path.read_bytes()[:300])
  with pytest.raises(ValueError, match=f"cannot read .* from {truncated}.*corrupt"):
    conll2000.load(truncated, verify=False)
  _conll_zip(path, TRAIN, None)
  with pytest.raises(ValueError, match=f"{path} has no member conll2000/test.txt"):
    conll2000.load(path, verify=False)
  _conll_zip(path, TRAIN, "She PRP\n")
  with pytest.raises(ValueError, match=f"{path}:conll2000/test.txt line 1 has 2 fields"):
    conll2000.load(path, verify=False)


def test_conll2000_sha256_constant_matches_provenance(data_dir):
  path = conll2000.zip_path(data_dir)
  assert hashlib.sha256(path.read_bytes()).hexdigest() == conll2000.SHA256


# --- chunk F1 (conlleval) ------------------------------------------------------------------


def test_chunk_f1_identical():
  tags = [["B-NP", "I-NP", "O", "B-VP"], ["B-PP", "B-NP"]]
  scores = chunking.chunk_f1(tags, tags)
  assert scores[:7] == (100, 100, 100, 100, 4, 4, 4)
  assert scores.per_type == {"NP": (100, 100, 100), "PP": (100, 100, 100),
                             "VP": (100, 100, 100)}


def test_chunk_f1_i_after_o_starts_a_chunk():
  gold = ["B-NP", "I-NP", "O", "B-VP", "I-VP"]
  # An I- tag at a sentence start or after O starts a chunk, as B- would.
  assert chunking.chunk_f1(["I-NP", "I-NP", "O", "I-VP", "I-VP"], gold).f1 == 100
  assert chunking.chunks(["O", "I-NP", "I-NP"]) == [("NP", 1, 2)]
  # Pred chunks NP[1,1], VP[3,4]; gold NP[0,1], VP[3,4]: one of two correct.
  scores = chunking.chunk_f1(["O", "I-NP", "O", "I-VP", "I-VP"], gold)
  assert scores[:7] == (50, 50, 50, 60, 1, 2, 2)


def test_chunk_f1_type_change_inside_i_starts_a_new_chunk():
  assert chunking.chunks(["B-NP", "I-NP", "I-VP"]) == [("NP", 0, 1), ("VP", 2, 2)]
  scores = chunking.chunk_f1(["B-NP", "I-NP", "I-VP"], ["B-NP", "I-NP", "I-NP"])
  assert scores[4:7] == (0, 2, 1) and scores.f1 == 0
  # B-NP I-VP is the same chunking as B-NP B-VP.
  assert chunking.chunk_f1(["B-NP", "I-VP"], ["B-NP", "B-VP"]).f1 == 100
  assert chunking.chunks(["B-NP", "B-NP"]) == [("NP", 0, 0), ("NP", 1, 1)]


def test_chunk_f1_sentence_end_closes_chunks():
  gold = [["B-NP", "I-NP"], ["B-NP", "O"]]
  pred = [["B-NP", "I-NP"], ["I-NP", "O"]]
  assert chunking.chunk_f1(pred, gold)[:7] == (100, 100, 100, 75, 2, 2, 2)
  # Without the boundary the I-NP continues the first chunk: NP[0,2] vs NP[0,1], NP[2,2].
  flat = chunking.chunk_f1(sum(pred, []), sum(gold, []))
  assert flat[4:7] == (0, 1, 2)
  # A chunk that runs to the end of the last sentence counts.
  assert chunking.chunk_f1(["O", "B-NP", "I-NP"], ["O", "B-NP", "I-NP"]).num_correct == 1


def test_chunk_f1_hand_worked_scores():
  # Gold: NP[0,1] VP[2,3] NP[4,4] PP[5,5]; pred: NP[0,1] VP[2,2] VP[3,3] NP[4,4].
  gold = ["B-NP", "I-NP", "B-VP", "I-VP", "B-NP", "B-PP", "O"]
  pred = ["B-NP", "I-NP", "B-VP", "B-VP", "B-NP", "O", "O"]
  scores = chunking.chunk_f1(pred, gold)
  assert scores[4:7] == (2, 4, 4)
  assert scores.precision == 50 and scores.recall == 50 and scores.f1 == 50
  assert scores.accuracy == pytest.approx(100 * 5 / 7)
  assert scores.per_type["VP"] == (0, 0, 0) and scores.per_type["PP"] == (0, 0, 0)
  np.testing.assert_allclose(scores.per_type["NP"], (100, 100, 100))
  # Ends differ: NP[0,0] is not NP[0,1].
  assert chunking.chunk_f1(["B-NP", "O", "O"], ["B-NP", "I-NP", "O"]).num_correct == 0
  # No predicted chunks: precision and F1 are 0, as conlleval prints them.
  assert chunking.chunk_f1(["O", "O"], ["B-NP", "O"])[:3] == (0, 0, 0)


def test_chunk_f1_equals_span_matching_on_random_tags():
  rng = np.random.default_rng(0)
  tags = np.array(["O", "B-NP", "I-NP", "B-VP", "I-VP", "I-PP"])
  for _ in range(200):
    length = int(rng.integers(1, 12))
    gold, pred = (list(tags[rng.integers(0, len(tags), length)]) for _ in range(2))
    scores = chunking.chunk_f1(pred, gold)
    want = set(chunking.chunks(gold)), set(chunking.chunks(pred))
    assert scores[4:7] == (len(want[0] & want[1]), len(want[1]), len(want[0]))


def test_chunk_f1_rejects_mismatched_lengths():
  with pytest.raises(ValueError, match="same sentences and lengths"):
    chunking.chunk_f1([["O"], ["O", "O"]], [["O"], ["O"]])
