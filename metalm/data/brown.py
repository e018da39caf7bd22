"""The Brown corpus's 15 genres as language-modelling tasks.

Francis & Kucera 1964/1979, "Brown Corpus Manual": 500 samples of edited American English
of 1961 in 15 genres (news, editorial, reviews, religion, hobbies, lore, belles_lettres,
government, learned, fiction, mystery, science_fiction, adventure, romance, humor).

Source: ``$METALM_DATA_DIR/nltk_data/corpora/brown.zip``, NLTK's ``brown`` package (see
``nltk_data/PROVENANCE.md``), read with ``zipfile`` (NLTK is not needed): files
``brown/c[a-r]NN`` hold one sentence per non-blank line of ``word/tag`` tokens, and
``brown/cats.txt`` maps each file id to its genre. 57340 sentences in all.

Sentences keep their words (tags dropped) and are detokenized into plain text: both quote
tokens (two backquotes, two apostrophes) become ``"`` and closing punctuation is attached.
Each is encoded with a ``metalm.lm.tokenizers`` tokenizer (UTF-8 bytes by default) as
``<bos> text <eos>``, truncated and right-padded with ``pad_id`` to ``L`` tokens (34% of
the sentences are longer than the default ``L`` = 128 bytes).

A task is one genre: ``GenreSampler`` draws ``K`` support and ``Q`` query sentences of it
(distinct), with ``y = x`` (the targets of next-token prediction are the tokens).

Genre split: the sorted genre names permuted by ``default_rng(0)``
(``text_fewshot.permuted_split``) give 3 meta-test genres (editorial, religion,
fiction), 2 meta-val genres (news, adventure) and 10 meta-train genres (government,
learned, hobbies, science_fiction, reviews, humor, mystery, romance, lore,
belles_lettres).
"""

import collections
import re
import zipfile
from typing import NamedTuple, Sequence

import numpy as np

from metalm import types
from metalm.data import episodic, text_fewshot
from metalm.lm import tokenizers

ZIP_PATH = "nltk_data/corpora/brown.zip"  # Under $METALM_DATA_DIR.
CATS = "brown/cats.txt"
GENRES = ("adventure", "belles_lettres", "editorial", "fiction", "government", "hobbies",
          "humor", "learned", "lore", "mystery", "news", "religion", "reviews", "romance",
          "science_fiction")
# sha256 of brown.zip as listed in nltk_data/PROVENANCE.md.
SHA256 = "9b275f9b3b95d7bd66ccfb7cd259f445a13bbe5d1f4107aba09fd3e8364bafa6"
_FIX = ("Set METALM_DATA_DIR to the folder that holds nltk_data/corpora/brown.zip (or pass "
        "data_dir=); get it with `python -m nltk.downloader -d $METALM_DATA_DIR/nltk_data "
        "brown` or from https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/"
        "corpora/brown.zip.")
_NO_SPACE_BEFORE = re.compile(r" ([,.;:!?)\]}%]|'s\b|n't\b|'')")
_NO_SPACE_AFTER = re.compile(r"([(\[{$]|``) ")


def load(data_dir=None, *, max_len: int = 128, num_val: int = 2, num_test: int = 3,
         tokenizer: tokenizers.Tokenizer | None = None) -> text_fewshot.TextSplits:
  """The meta-train / meta-val / meta-test genres, each a ``[E_g, L]`` token array.

  Args:
    data_dir: the datasets folder holding ``nltk_data/corpora/brown.zip``;
      ``$METALM_DATA_DIR`` by default.
    max_len: L, tokens per sentence with ``<bos>`` and ``<eos>`` (longer ones are cut).
    num_val: meta-val genres.
    num_test: meta-test genres.
    tokenizer: the byte tokenizer by default.

  Raises:
    FileNotFoundError: the zip is missing (the message names it and where to get it).
    ValueError: the zip cannot be read (the message gives its sha256 and the listed one).
  """
  root = text_fewshot.data_root(data_dir, "Brown", _FIX)
  sentences = read_sentences(text_fewshot.require(root / ZIP_PATH, "Brown", _FIX))
  names = text_fewshot.permuted_split(list(sentences), num_val, num_test, seed=0)
  tokenizer = tokenizer or tokenizers.byte_tokenizer()
  splits = {}
  for split in text_fewshot.SPLIT_NAMES:
    texts = tuple(tuple(sentences[g]) for g in names[split])
    splits[split] = text_fewshot.TextSplit(
        [encode(t, tokenizer, max_len) for t in texts], texts, names[split])
  return text_fewshot.TextSplits(**splits)


def read_sentences(path) -> dict[str, list[str]]:
  """Genre -> its detokenized sentences, files in ``cats.txt`` order."""
  sentences = collections.defaultdict(list)
  try:
    with zipfile.ZipFile(path) as archive:
      for number, line in enumerate(archive.read(CATS).decode("latin-1").splitlines(), 1):
        if not line.strip():
          continue
        fileid, genre = line.split()
        if genre not in GENRES:
          raise ValueError(f"{CATS} line {number} names an unknown genre {genre!r}")
        for text in archive.read(f"brown/{fileid}").decode("latin-1").splitlines():
          if text.strip():
            sentences[genre].append(detokenize([w.rpartition("/")[0] for w in text.split()]))
  except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as error:
    raise text_fewshot.corrupt("Brown", path, SHA256, repr(error), _FIX) from error
  return dict(sentences)


def detokenize(words: Sequence[str]) -> str:
  """Words joined into plain text: quotes as ``"``, closing punctuation attached."""
  text = _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", " ".join(words)))
  return text.replace("``", '"').replace("''", '"')


def encode(texts: Sequence[str], tokenizer: tokenizers.Tokenizer, max_len: int) -> np.ndarray:
  """``[E, max_len]`` int32 ids of ``<bos> text <eos>``, cut at ``max_len``, padded."""
  if max_len < 2:
    raise ValueError(f"max_len must be >= 2 (<bos> and <eos>); got {max_len}.")
  ids_ExL = np.full((len(texts), max_len), tokenizer.pad_id, np.int32)
  for row, text in enumerate(texts):
    ids = tokenizer.encode(text[:8 * max_len], add_bos=True, add_eos=True)[:max_len]
    ids_ExL[row, :len(ids)] = ids
  return ids_ExL


class GenreSampler(NamedTuple):
  """Language-modelling tasks: one genre each, K support and Q query sentences.

  ``batch(step, num_tasks)`` draws a genre per task and ``K + Q`` distinct sentences of
  it, from ``episodic.episode_rng(seed, step, task)``; ``genre_batch`` fixes the genre
  (evaluation). Both return a ``types.TaskBatch`` of ``[T, K, L]`` / ``[T, Q, L]``
  int32 ids whose ``y`` equals its ``x``.
  """

  tokens: tuple[np.ndarray, ...]  # One [E_g, L] array per genre.
  shots: int
  queries: int
  seed: int

  def task(self, genre: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rows = rng.choice(len(self.tokens[genre]), self.shots + self.queries, replace=False)
    chosen = self.tokens[genre][rows]
    return chosen[:self.shots], chosen[self.shots:]

  def genre_batch(self, genre: int | None, step: int, num_tasks: int) -> types.TaskBatch:
    support, query = [], []
    for t in range(num_tasks):
      rng = episodic.episode_rng(self.seed, step, t)
      g = int(rng.integers(len(self.tokens))) if genre is None else genre
      s, q = self.task(g, rng)
      support.append(s)
      query.append(q)
    support, query = np.stack(support), np.stack(query)
    return types.TaskBatch(support, support, query, query)

  def batch(self, step: int, num_tasks: int) -> types.TaskBatch:
    return self.genre_batch(None, step, num_tasks)


def sampler(tokens: Sequence[np.ndarray], *, shots: int, queries: int,
            seed: int) -> GenreSampler:
  """A ``GenreSampler`` over ``tokens`` (one array per genre, e.g. ``load().train.tokens``).

  Raises:
    ValueError: a genre has fewer than ``shots + queries`` sentences, or ``queries`` < 1.
  """
  if shots < 0 or queries < 1:
    raise ValueError(f"Need shots >= 0 and queries >= 1; got {shots} and {queries}.")
  fewest = min(len(t) for t in tokens)
  if fewest < shots + queries:
    raise ValueError(f"{shots} shots + {queries} queries need {shots + queries} sentences "
                     f"per genre; a genre has {fewest}.")
  return GenreSampler(tuple(np.asarray(t, np.int32) for t in tokens), shots, queries, seed)
