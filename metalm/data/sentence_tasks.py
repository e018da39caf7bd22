"""Sentence-classification tasks for joint multitask training: TREC, polarity, subjectivity.

- ``trec``: the 6 coarse question classes of Li & Roth 2002 (COLING), from ``qc.zip``:
  train_5500 (5,452 questions) for training and TREC_10 (500) for testing.
- ``polarity``: Pang & Lee 2005 (ACL) sentence polarity v1.0, ``sentence_polarity.zip``:
  5,331 positive and 5,331 negative snippets of movie reviews.
- ``subjectivity``: Pang & Lee 2004 (ACL) subjectivity v1.0, ``subjectivity.zip``: 5,000
  subjective (review quotes) and 5,000 objective (plot summaries) sentences.

Polarity and subjectivity have no official test split (papers use 10-fold cross-
validation); here the first tenth of a permutation by ``default_rng(0)`` is the test set,
the rest the training set, so every run sees the same split. Every split is stored in a
permuted order (``default_rng(0)``), so its first ``n`` examples are a random sample.
All files are read from the zips under ``$METALM_DATA_DIR/nltk_data/corpora`` with
``zipfile``. The texts come tokenized by spaces; ``units="words"`` maps words to ids of a
vocabulary built from the training texts of the loaded tasks (``<pad>`` = 0, ``<unk>`` =
1), ``units="bytes"`` encodes UTF-8 bytes with ``metalm.lm.tokenizers`` (about 5x longer
sequences).
"""

import collections
import functools
import zipfile
from typing import NamedTuple, Sequence

import numpy as np

from metalm.data import text_fewshot
from metalm.data import trec as trec_data
from metalm.lm import tokenizers

CORPORA = "nltk_data/corpora"  # Under $METALM_DATA_DIR.
# sha256 of each zip as listed in nltk_data/PROVENANCE.md.
SHA256 = {
    "sentence_polarity.zip": "6e1ed4405b65c7eabf1d199a7f7c437091ac21da0ea7467b410a74062574566b",
    "subjectivity.zip": "741f3371e1a4375051b874fd82fd55857b90975473c91c19a3101cbe17fc4d8c",
    "qc.zip": trec_data.SHA256,
}
# (zip, {class name: member}) of the two-class corpora, classes in label order.
MEMBERS = {
    "polarity": ("sentence_polarity.zip", {
        "negative": "sentence_polarity/rt-polarity.neg",
        "positive": "sentence_polarity/rt-polarity.pos"}),
    "subjectivity": ("subjectivity.zip", {
        "objective": "subjectivity/plot.tok.gt9.5000",
        "subjective": "subjectivity/quote.tok.gt9.5000"}),
}
TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
TASKS = ("trec", "polarity", "subjectivity")
NUM_FOLDS = 10


def _fix(zip_name: str) -> str:
  package = zip_name.removesuffix(".zip")
  return (f"Set METALM_DATA_DIR to the folder that holds {CORPORA}/{zip_name} (or pass "
          f"data_dir=); get it with `python -m nltk.downloader -d $METALM_DATA_DIR/nltk_data "
          f"{package}`.")


class Split(NamedTuple):
  """One task's examples: token ids ``[N, L]`` (padded with the tokenizer's pad id)."""

  tokens: np.ndarray
  labels: np.ndarray  # [N] int32 class ids.
  texts: tuple[str, ...]


class Task(NamedTuple):
  """A sentence-classification task with its class names and splits."""

  name: str
  classes: tuple[str, ...]
  train: Split
  test: Split


class SentenceTasks(NamedTuple):
  """The loaded tasks and how their token ids read."""

  tasks: dict[str, Task]
  vocab_size: int
  pad_id: int
  words: tuple[str, ...] | None  # The word of each id (``units="words"``).


PAD, UNK = "<pad>", "<unk>"


def load(names: Sequence[str] = TASKS, data_dir=None, *, max_len: int = 48,
         units: str = "words", min_count: int = 2) -> SentenceTasks:
  """The tasks ``names`` (any of ``TASKS``), as ``max_len`` ids of words or bytes.

  Args:
    names: which tasks.
    data_dir: the datasets folder; ``$METALM_DATA_DIR`` by default.
    max_len: L, ids per sentence (longer sentences are truncated).
    units: ``"words"`` (a vocabulary of the training texts) or ``"bytes"``.
    min_count: training occurrences a word needs to get its own id (``units="words"``).

  Raises:
    ValueError: an unknown task name or unit, or a zip that cannot be read (the message
      gives its sha256 and the listed one).
    FileNotFoundError: a zip is missing (the message names it and where to get it).
  """
  unknown = sorted(set(names) - set(TASKS))
  if unknown or not names:
    raise ValueError(f"Unknown sentence tasks {unknown or names}; known: {list(TASKS)}.")
  if units not in ("words", "bytes"):
    raise ValueError(f"units must be 'words' or 'bytes', got {units!r}.")
  root = text_fewshot.data_root(data_dir, "sentence tasks", _fix("<corpus>.zip"))
  raw = {name: _read_trec(root) if name == "trec" else _read_two_class(root, name)
         for name in names}
  if units == "bytes":
    tokenizer = tokenizers.byte_tokenizer()
    encode = lambda texts: tokenizer.encode_batch(texts, max_length=max_len)[0]
    vocab_size, pad_id, words = tokenizer.vocab_size, tokenizer.pad_id, None
  else:
    counts = collections.Counter(
        w for _, (texts, _), _ in raw.values() for t in texts for w in t.split())
    words = (PAD, UNK, *sorted(w for w, c in counts.items() if c >= min_count))
    encode = functools.partial(encode_words, ids={w: i for i, w in enumerate(words)},
                               max_len=max_len)
    vocab_size, pad_id = len(words), 0
  tasks = {name: Task(name, classes, *(Split(encode(texts), np.asarray(labels, np.int32),
                                             tuple(texts)) for texts, labels in splits))
           for name, (classes, *splits) in raw.items()}
  return SentenceTasks(tasks, vocab_size, pad_id, words)


def encode_words(texts: Sequence[str], ids: dict[str, int], max_len: int) -> np.ndarray:
  """Space-separated words to ids ``[N, max_len]``: 0 pads, 1 stands for unknown words."""
  out = np.zeros((len(texts), max_len), np.int32)
  for row, text in enumerate(texts):
    kept = [ids.get(w, 1) for w in text.split()[:max_len]]
    out[row, :len(kept)] = kept
  return out


def _read_trec(root):
  path = text_fewshot.require(root / CORPORA / "qc.zip", "TREC", _fix("qc.zip"))
  splits = []
  for member in trec_data.MEMBERS:  # train.txt (train_5500), then test.txt (TREC_10).
    by_label = trec_data.read_questions(path, members=(member,))
    pairs = [(text, TREC_COARSE.index(label.split(":")[0]))
             for label, texts in sorted(by_label.items()) for text in texts]
    order = np.random.default_rng(0).permutation(len(pairs))
    splits.append(([pairs[i][0] for i in order], [pairs[i][1] for i in order]))
  return TREC_COARSE, splits[0], splits[1]


def _read_two_class(root, name):
  zip_name, members = MEMBERS[name]
  path = text_fewshot.require(root / CORPORA / zip_name, name, _fix(zip_name))
  try:
    with zipfile.ZipFile(path) as archive:
      by_class = [[line.strip() for line in archive.read(m).decode("utf-8").splitlines()
                   if line.strip()] for m in members.values()]
  except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, OSError, EOFError) as error:
    raise text_fewshot.corrupt(name, path, SHA256[zip_name], repr(error),
                               _fix(zip_name)) from error
  texts = [t for sentences in by_class for t in sentences]
  labels = np.concatenate([np.full(len(s), i, np.int32) for i, s in enumerate(by_class)])
  order = np.random.default_rng(0).permutation(len(texts))
  num_test = len(texts) // NUM_FOLDS
  pick = lambda rows: ([texts[i] for i in rows], labels[rows])
  return tuple(members), pick(order[num_test:]), pick(order[:num_test])
