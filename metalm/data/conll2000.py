"""CoNLL-2000 chunking: words with POS tags and IOB chunk tags, two tagging tasks.

Tjong Kim Sang & Buchholz 2000, "Introduction to the CoNLL-2000 shared task: chunking"
(arXiv:cs/0009008): WSJ sections 15-18 for training (8936 sentences), section 20 for
testing (2012). Each token has a POS tag (44 in training) and a chunk tag in IOB2
(``B-NP``, ``I-NP``, ``O``; 11 chunk types).

Source: ``$METALM_DATA_DIR/nltk_data/corpora/conll2000.zip``, the NLTK data package
(see ``nltk_data/PROVENANCE.md``), read directly with ``zipfile`` (NLTK is not needed):
``conll2000/{train,test}.txt``, one ``word POS chunk`` line per token and an empty
line after each sentence. TFDS has no CoNLL-2000 builder.

Vocabularies come from the training sentences only. Words: ``<pad>`` = 0, ``<unk>`` = 1,
then the words seen at least ``min_count`` times, most frequent first (optionally
lowercased). POS tags: sorted. Chunk tags: ``O`` = 0, then ``B-`` and ``I-`` of each
chunk type seen in training (so ``I-LST``, which occurs only in the test set, has an
id). Padded positions hold 0 and ``mask`` False.
"""

import collections
import hashlib
import os
import pathlib
import zipfile
from typing import NamedTuple, Sequence

import numpy as np

PAD, UNK = "<pad>", "<unk>"
SPLITS = ("train", "test")
MEMBERS = {"train": "conll2000/train.txt", "test": "conll2000/test.txt"}
ZIP_PATH = "nltk_data/corpora/conll2000.zip"  # Under $METALM_DATA_DIR.
# sha256 of conll2000.zip as listed in nltk_data/PROVENANCE.md.
SHA256 = "01e65164f268366e7caa0db92332a1955d081908c87016e2c7640c3c5279b7cd"
_FIX = ("Set METALM_DATA_DIR to the folder that holds nltk_data/corpora/conll2000.zip (or "
        "pass data_dir=, or the zip's own path); get the zip with `python -m "
        "nltk.downloader -d $METALM_DATA_DIR/nltk_data conll2000` (NLTK is needed only to "
        "download) or from https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/"
        "packages/corpora/conll2000.zip.")

Sentence = tuple[tuple[str, str, str], ...]  # (word, POS tag, chunk tag) per token.


class Vocab(NamedTuple):
  """Id -> string tables of the three columns."""

  words: tuple[str, ...]  # 0 = '<pad>', 1 = '<unk>'.
  pos: tuple[str, ...]
  chunk: tuple[str, ...]  # 0 = 'O'.
  lowercase: bool  # Whether words are lowercased before lookup.


class Split(NamedTuple):
  """Padded id arrays of one split; ``x = tokens``, ``y`` the two tasks' targets."""

  tokens: np.ndarray  # [N, L] int32 word ids.
  pos: np.ndarray  # [N, L] int32 POS tag ids.
  chunk: np.ndarray  # [N, L] int32 chunk tag ids.
  mask: np.ndarray  # [N, L] bool, True on the tokens of each sentence.
  sentences: tuple[Sentence, ...]  # The source sentences, untruncated.

  @property
  def y(self) -> dict[str, np.ndarray]:
    return {"pos": self.pos, "chunk": self.chunk}


class Conll2000(NamedTuple):
  train: Split
  test: Split
  vocab: Vocab


def load(data_dir=None, *, max_len: int | None = None, lowercase: bool = False,
         min_count: int = 1, verify: bool = True) -> Conll2000:
  """Both splits, encoded with vocabularies built from the training split.

  Args:
    data_dir: the datasets folder holding ``nltk_data/corpora/conll2000.zip`` (or
      ``nltk_data/``, ``corpora/``, or the zip itself); ``$METALM_DATA_DIR`` by default.
    max_len: padded length L; longer sentences are truncated (their ``mask`` covers
      the kept tokens). By default the longest sentence of either split (78).
    lowercase: lowercase words before counting and lookup.
    min_count: training occurrences a word needs to get its own id (else ``<unk>``).
    verify: check the zip's sha256 against ``PROVENANCE.md``.

  Returns:
    ``Conll2000(train, test, vocab)``.

  Raises:
    FileNotFoundError: the zip is missing (the message names the path and the fix).
    ValueError: the zip is corrupt, has the wrong hash, or a line cannot be parsed.
  """
  path = zip_path(data_dir)
  if verify:
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    if found != SHA256:
      raise ValueError(f"CoNLL-2000: {path} has sha256 {found}, but "
                       f"nltk_data/PROVENANCE.md lists {SHA256}: the file is corrupt or "
                       f"another version. Copy it again, or pass verify=False. {_FIX}")
  train, test = (read_sentences(path, split) for split in SPLITS)
  vocab = build_vocab(train, lowercase=lowercase, min_count=min_count)
  max_len = max_len or max(len(s) for s in (*train, *test))
  return Conll2000(encode(train, vocab, max_len), encode(test, vocab, max_len), vocab)


def zip_path(data_dir=None) -> pathlib.Path:
  """The path of ``conll2000.zip`` under ``data_dir`` (a FileNotFoundError if absent)."""
  if data_dir is None:
    data_dir = os.environ.get("METALM_DATA_DIR")
    if not data_dir:
      raise FileNotFoundError(f"CoNLL-2000: METALM_DATA_DIR is unset. {_FIX}")
  root = pathlib.Path(data_dir).expanduser()
  candidates = [root / ZIP_PATH, root / "corpora/conll2000.zip", root / "conll2000.zip"]
  if root.suffix == ".zip":
    candidates = [root]
  for path in candidates:
    if path.is_file():
      return path
  raise FileNotFoundError(f"CoNLL-2000: {candidates[0]} does not exist. {_FIX}")


def read_sentences(path, split: str) -> tuple[Sentence, ...]:
  """The sentences of ``split`` in the zip at ``path``."""
  if split not in SPLITS:
    raise ValueError(f"Unknown split {split!r}; use one of {SPLITS}.")
  member = MEMBERS[split]
  try:
    with zipfile.ZipFile(path) as archive:
      text = archive.read(member).decode("utf-8")
  except KeyError:
    raise ValueError(f"CoNLL-2000: {path} has no member {member}; is it NLTK's "
                     f"conll2000.zip? {_FIX}") from None
  except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError) as error:
    raise ValueError(f"CoNLL-2000: cannot read {member} from {path}: {error!r}. The file "
                     f"is corrupt or truncated. {_FIX}") from error
  sentences, current = [], []
  for number, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      if current:
        sentences.append(tuple(current))
        current = []
      continue
    fields = line.split()
    if len(fields) != 3:
      raise ValueError(f"CoNLL-2000: {path}:{member} line {number} has {len(fields)} "
                       f"fields, expected 'word POS chunk': {line!r}.")
    current.append(tuple(fields))
  if current:
    sentences.append(tuple(current))
  return tuple(sentences)


def build_vocab(sentences: Sequence[Sentence], *, lowercase: bool = False,
                min_count: int = 1) -> Vocab:
  """Vocabularies of words, POS tags and chunk tags from (training) sentences."""
  counts = collections.Counter(_word(w, lowercase) for s in sentences for w, _, _ in s)
  words = sorted((w for w, c in counts.items() if c >= min_count),
                 key=lambda w: (-counts[w], w))
  pos = sorted({p for s in sentences for _, p, _ in s})
  kinds = sorted({c.partition("-")[2] for s in sentences for _, _, c in s if c != "O"})
  chunk = ("O", *(f"{prefix}-{kind}" for kind in kinds for prefix in "BI"))
  return Vocab((PAD, UNK, *words), tuple(pos), chunk, lowercase)


def encode(sentences: Sequence[Sentence], vocab: Vocab, max_len: int) -> Split:
  """Pads sentences to ``max_len`` (truncating longer ones) as id arrays and a mask."""
  word_id = {w: i for i, w in enumerate(vocab.words)}
  pos_id = {p: i for i, p in enumerate(vocab.pos)}
  chunk_id = {c: i for i, c in enumerate(vocab.chunk)}
  shape = (len(sentences), max_len)
  tokens, pos, chunk = (np.zeros(shape, np.int32) for _ in range(3))
  mask = np.zeros(shape, bool)
  for i, sentence in enumerate(sentences):
    kept = sentence[:max_len]
    tokens[i, :len(kept)] = [word_id.get(_word(w, vocab.lowercase), 1) for w, _, _ in kept]
    pos[i, :len(kept)] = _lookup(pos_id, (p for _, p, _ in kept), "POS", i)
    chunk[i, :len(kept)] = _lookup(chunk_id, (c for _, _, c in kept), "chunk", i)
    mask[i, :len(kept)] = True
  return Split(tokens, pos, chunk, mask, tuple(sentences))


def _word(word: str, lowercase: bool) -> str:
  return word.lower() if lowercase else word


def _lookup(ids, tags, what, i):
  try:
    return [ids[t] for t in tags]
  except KeyError as error:
    raise ValueError(f"CoNLL-2000: sentence {i} has the {what} tag {error.args[0]!r}, "
                     f"which is not in the vocabulary {sorted(ids)}.") from None
