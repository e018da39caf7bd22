"""Labelled text as class-disjoint few-shot splits of token-id arrays.

The shared part of the text loaders (``clinc150``, ``trec``, ``fewrel``,
``reuters21578``): every data set becomes ``TextSplits(train, val, test)``, each a
``TextSplit`` whose ``tokens`` is a list of ``[E_c, L]`` int32 arrays, one per class,
which ``metalm.data.episodic.sampler`` takes as it is (integer examples stay int32 ids).
Texts are encoded with a ``metalm.lm.tokenizers`` tokenizer (UTF-8 bytes by default),
truncated and right-padded with its ``pad_id`` to a fixed length ``L``.

Class splits are fixed per data set (each module documents its own); the count-based
ones draw a permutation of the sorted class names from ``numpy``'s
``default_rng(seed)``, so they are the same on every machine.
"""

import hashlib
import os
import pathlib
from typing import NamedTuple, Sequence

import numpy as np

from metalm.lm import tokenizers

SPLIT_NAMES = ("train", "val", "test")


class TextSplit(NamedTuple):
  """The classes of one split.

  Attributes:
    tokens: one ``[E_c, L]`` int32 array of token ids per class (padded with the
      tokenizer's ``pad_id``).
    texts: the source texts of each class, in the row order of ``tokens``.
    names: the class names (intent, question class, relation id, topic).
  """

  tokens: list[np.ndarray]
  texts: tuple[tuple[str, ...], ...]
  names: tuple[str, ...]


class TextSplits(NamedTuple):
  train: TextSplit
  val: TextSplit
  test: TextSplit


def data_root(data_dir, dataset: str, fix: str) -> pathlib.Path:
  """``data_dir`` or ``$METALM_DATA_DIR`` as a path; a FileNotFoundError if neither."""
  if data_dir is None:
    data_dir = os.environ.get("METALM_DATA_DIR")
    if not data_dir:
      raise FileNotFoundError(f"{dataset}: METALM_DATA_DIR is unset. {fix}")
  return pathlib.Path(data_dir).expanduser()


def require(path: pathlib.Path, dataset: str, fix: str) -> pathlib.Path:
  """``path`` if it is a file, else a FileNotFoundError naming it and the fix."""
  if not path.is_file():
    raise FileNotFoundError(f"{dataset}: {path} does not exist. {fix}")
  return path


def sha256(path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def corrupt(dataset: str, path, expected_sha256: str, problem: str, fix: str) -> ValueError:
  """The error for a file that cannot be parsed: its hash against the listed one."""
  found = sha256(path)
  verdict = ("it matches, so the format is not the one this loader reads"
             if found == expected_sha256 else "the file is corrupt or another version")
  return ValueError(f"{dataset}: cannot read {path}: {problem}. Its sha256 is {found}; "
                    f"PROVENANCE.md lists {expected_sha256} ({verdict}). {fix}")


def permuted_split(names: Sequence[str], num_val: int, num_test: int,
                   seed: int) -> dict[str, tuple[str, ...]]:
  """Sorted ``names`` permuted by ``default_rng(seed)``: test first, then val, then train.

  Raises:
    ValueError: fewer names than ``num_val + num_test + 1``.
  """
  names = sorted(names)
  if num_val < 0 or num_test < 0 or len(names) <= num_val + num_test:
    raise ValueError(f"Cannot split {len(names)} classes into {num_val} val, {num_test} "
                     f"test and at least one train class.")
  order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
  return {"test": tuple(order[:num_test]),
          "val": tuple(order[num_test:num_test + num_val]),
          "train": tuple(order[num_test + num_val:])}


def make_splits(texts_by_class: dict[str, Sequence[str]],
                split_names: dict[str, Sequence[str]], *, max_len: int,
                tokenizer: tokenizers.Tokenizer | None = None,
                windows: dict[str, Sequence[tuple[int, int]]] | None = None) -> TextSplits:
  """Encodes every class of every split.

  Args:
    texts_by_class: class name -> its texts.
    split_names: split name -> its class names (in this order in the split).
    max_len: L, the padded length.
    tokenizer: the byte tokenizer by default.
    windows: optional class name -> per-text character span ``(start, end)`` that a
      truncated text must keep (e.g. the entity mentions of a relation); the kept window
      of ``L`` tokens is centred on it.
  """
  tokenizer = tokenizer or tokenizers.byte_tokenizer()
  splits = {}
  for split in SPLIT_NAMES:
    names = tuple(split_names[split])
    texts = tuple(tuple(texts_by_class[n]) for n in names)
    tokens = [encode(t, tokenizer, max_len, (windows or {}).get(n))
              for n, t in zip(names, texts, strict=True)]
    splits[split] = TextSplit(tokens, texts, names)
  return TextSplits(**splits)


def encode(texts: Sequence[str], tokenizer: tokenizers.Tokenizer, max_len: int,
           spans: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
  """``[E, max_len]`` int32 ids, right-padded; truncated at the end or around ``spans``."""
  if max_len < 1:
    raise ValueError(f"max_len must be >= 1; got {max_len}.")
  ids_ExL = np.full((len(texts), max_len), tokenizer.pad_id, np.int32)
  for row, text in enumerate(texts):
    if spans is None:
      # A byte is at most one character; a BPE token rarely spans 8.
      ids = tokenizer.encode(text[:max_len if not tokenizer.merges else 8 * max_len])
    else:
      ids = window(tokenizer, text, spans[row], max_len)
    ids = ids[:max_len]
    ids_ExL[row, :len(ids)] = ids
  return ids_ExL


def window(tokenizer: tokenizers.Tokenizer, text: str, span: tuple[int, int],
           max_len: int) -> list[int]:
  """At most ``max_len`` ids of ``text`` that keep the characters ``span`` if they fit."""
  ids = tokenizer.encode(text)
  if len(ids) <= max_len:
    return ids
  start = len(tokenizer.encode(text[:span[0]]))
  end = len(tokenizer.encode(text[:span[1]]))
  first = max(0, min(start - (max_len - (end - start)) // 2, len(ids) - max_len))
  return ids[first:first + max_len]
