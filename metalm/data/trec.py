"""TREC question classes (fine labels) as class-disjoint few-shot splits.

Li & Roth 2002, "Learning Question Classifiers" (COLING): questions labelled with 6
coarse and 50 fine classes, written ``COARSE:fine`` (e.g. ``NUM:date``).

Source: ``$METALM_DATA_DIR/nltk_data/corpora/qc.zip``, NLTK's ``qc`` package (see
``nltk_data/PROVENANCE.md``), read with ``zipfile``: ``qc/train.txt`` (5452 questions,
train_5500) and ``qc/test.txt`` (500, TREC_10), one ``LABEL question`` line each,
latin-1 (one byte of train.txt is not UTF-8).

A class is a fine label; both files are pooled, and labels with at least
``min_examples`` (20: 5 shots + 15 queries) questions are kept: 35 of the 50. Their
sorted names permuted by ``default_rng(0)`` give 20 meta-train, 5 meta-val and 10
meta-test classes.
"""

import collections
import zipfile

from metalm.data import text_fewshot
from metalm.lm import tokenizers

ZIP_PATH = "nltk_data/corpora/qc.zip"  # Under $METALM_DATA_DIR.
MEMBERS = ("qc/train.txt", "qc/test.txt")
# sha256 of qc.zip as listed in nltk_data/PROVENANCE.md.
SHA256 = "091fb01e50883014d150acb7d5013d787136968b3f955ae01725a65e7e80f304"
_FIX = ("Set METALM_DATA_DIR to the folder that holds nltk_data/corpora/qc.zip (or pass "
        "data_dir=); get it with `python -m nltk.downloader -d $METALM_DATA_DIR/nltk_data "
        "qc` or from https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/"
        "corpora/qc.zip.")


def load(data_dir=None, *, max_len: int = 64, min_examples: int = 20, num_val: int = 5,
         num_test: int = 10, tokenizer: tokenizers.Tokenizer | None = None,
         ) -> text_fewshot.TextSplits:
  """The meta-train / meta-val / meta-test fine question classes, tokenized.

  Args:
    data_dir: the datasets folder holding ``nltk_data/corpora/qc.zip``;
      ``$METALM_DATA_DIR`` by default.
    max_len: L, tokens per question (questions are at most 196 characters).
    min_examples: questions a fine label needs to be a class.
    num_val: meta-val classes.
    num_test: meta-test classes.
    tokenizer: the byte tokenizer by default.

  Raises:
    FileNotFoundError: the zip is missing (the message names it and where to get it).
    ValueError: the zip cannot be read (the message gives its sha256 and the listed one).
  """
  root = text_fewshot.data_root(data_dir, "TREC", _FIX)
  questions = read_questions(text_fewshot.require(root / ZIP_PATH, "TREC", _FIX))
  kept = {label: q for label, q in questions.items() if len(q) >= min_examples}
  names = text_fewshot.permuted_split(list(kept), num_val, num_test, seed=0)
  return text_fewshot.make_splits(kept, names, max_len=max_len, tokenizer=tokenizer)


def read_questions(path, members: tuple[str, ...] = MEMBERS) -> dict[str, list[str]]:
  """Fine label -> its questions from ``members`` in order (``train.txt``, ``test.txt``)."""
  questions = collections.defaultdict(list)
  try:
    with zipfile.ZipFile(path) as archive:
      for member in members:
        for number, line in enumerate(archive.read(member).decode("latin-1").splitlines(),
                                      1):
          if not line.strip():
            continue
          label, _, text = line.partition(" ")
          if ":" not in label or not text.strip():
            raise ValueError(f"{member} line {number} is not 'COARSE:fine question': "
                             f"{line!r}")
          questions[label].append(text.strip())
  except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as error:
    raise text_fewshot.corrupt("TREC", path, SHA256, repr(error), _FIX) from error
  return dict(questions)
