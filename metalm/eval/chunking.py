"""Chunk precision, recall and F1 as the CoNLL-2000 shared task scores them.

Tjong Kim Sang & Buchholz 2000, "Introduction to the CoNLL-2000 shared task: chunking"
(arXiv:cs/0009008), scored by ``conlleval`` (the shared task's Perl script). A chunk is
correct only if its first token, its last token and its type all match. Where chunks
start and end follows conlleval's ``startOfChunk`` / ``endOfChunk`` rules: an ``I-``
tag after ``O`` (or at a sentence start) starts a chunk, a change of type starts a new
one (``B-NP I-VP`` is two chunks), and every sentence end closes the open chunk. Tags
split at their first ``-`` into prefix and type; a tag without ``-`` has type ``""``.
"""

from typing import NamedTuple, Sequence

import numpy as np


class ChunkScores(NamedTuple):
  """Scores in percent, as conlleval prints them, and the counts behind them."""

  precision: float
  recall: float
  f1: float
  accuracy: float  # Token accuracy: predicted tag == gold tag.
  num_correct: int
  num_pred: int
  num_gold: int
  per_type: dict[str, tuple[float, float, float]]  # type -> (precision, recall, f1).


def chunk_f1(pred_tags, gold_tags) -> ChunkScores:
  """Scores predicted IOB tags against gold ones, as conlleval does.

  Args:
    pred_tags: sentences of tags (``[["B-NP", "I-NP", "O"], ...]``), or one sentence
      (a flat sequence of strings).
    gold_tags: the gold tags, of the same shape.

  Returns:
    ``ChunkScores``; precision, recall and F1 over chunks of all types together.
  """
  pred, gold = _sentences(pred_tags), _sentences(gold_tags)
  if [len(s) for s in pred] != [len(s) for s in gold]:
    raise ValueError("pred_tags and gold_tags must have the same sentences and lengths; "
                     f"got {len(pred)} and {len(gold)} sentences, lengths differing at "
                     f"sentence {_first_difference(pred, gold)}.")
  correct, found_pred, found_gold = {}, {}, {}
  correct_tags = tokens = 0
  in_correct = False
  last_p = last_g = ("O", "")
  for pred_sentence, gold_sentence in zip(pred, gold, strict=True):
    # A sentence end is a token tagged O in both, not counted (conlleval's boundary).
    for p_tag, g_tag, boundary in [*((p, g, False) for p, g in
                                     zip(pred_sentence, gold_sentence, strict=True)),
                                   ("O", "O", True)]:
      p, g = _split(p_tag), _split(g_tag)
      end_p, end_g = _end(last_p, p), _end(last_g, g)
      if in_correct:
        if end_g and end_p and last_p[1] == last_g[1]:
          in_correct = False
          correct[last_g[1]] = correct.get(last_g[1], 0) + 1
        elif end_g != end_p or p[1] != g[1]:
          in_correct = False
      start_p, start_g = _start(last_p, p), _start(last_g, g)
      if start_g and start_p and p[1] == g[1]:
        in_correct = True
      if start_g:
        found_gold[g[1]] = found_gold.get(g[1], 0) + 1
      if start_p:
        found_pred[p[1]] = found_pred.get(p[1], 0) + 1
      if not boundary:
        correct_tags += p == g
        tokens += 1
      last_p, last_g = p, g
  if in_correct:
    correct[last_g[1]] = correct.get(last_g[1], 0) + 1
  per_type = {t: _prf(correct.get(t, 0), found_pred.get(t, 0), found_gold.get(t, 0))
              for t in sorted(set(found_pred) | set(found_gold))}
  n_correct, n_pred, n_gold = (sum(c.values()) for c in (correct, found_pred, found_gold))
  return ChunkScores(*_prf(n_correct, n_pred, n_gold),
                     100.0 * correct_tags / tokens if tokens else 0.0,
                     n_correct, n_pred, n_gold, per_type)


def chunk_f1_ids(pred_NxL: np.ndarray, gold_NxL: np.ndarray, mask_NxL: np.ndarray,
                 tag_names: Sequence[str]) -> ChunkScores:
  """``chunk_f1`` of tag ids (e.g. a model's argmax), keeping the tokens of ``mask``."""
  names = np.asarray(tag_names, dtype=object)
  pred, gold, mask = np.asarray(pred_NxL), np.asarray(gold_NxL), np.asarray(mask_NxL, bool)
  return chunk_f1([list(names[p[m]]) for p, m in zip(pred, mask, strict=True)],
                  [list(names[g[m]]) for g, m in zip(gold, mask, strict=True)])


def chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
  """The chunks of one sentence as ``(type, first, last)`` token indices, by conlleval's
  rules."""
  found, start, last = [], None, ("O", "")
  for i, tag in enumerate([*tags, "O"]):
    current = _split(tag)
    if start is not None and _end(last, current):
      found.append((last[1], start, i - 1))
      start = None
    if _start(last, current):
      start = i
    last = current
  return found


def _split(tag: str) -> tuple[str, str]:
  prefix, dash, kind = tag.partition("-")
  return (prefix, kind) if dash else (tag, "")


def _end(last, current) -> bool:
  """conlleval's endOfChunk: the chunk open at ``last`` ends before ``current``."""
  (prev, prev_type), (tag, kind) = last, current
  return ((prev, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"),
                          ("E", "I"), ("E", "O")}
          or (prev not in ("O", ".") and prev_type != kind) or prev in ("[", "]"))


def _start(last, current) -> bool:
  """conlleval's startOfChunk: a chunk starts at ``current``."""
  (prev, prev_type), (tag, kind) = last, current
  return ((prev, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"),
                          ("E", "I"), ("O", "E")}
          or (tag not in ("O", ".") and prev_type != kind) or tag in ("[", "]"))


def _prf(correct, pred, gold):
  precision = 100.0 * correct / pred if pred else 0.0
  recall = 100.0 * correct / gold if gold else 0.0
  total = precision + recall
  return precision, recall, 2 * precision * recall / total if total else 0.0


def _sentences(tags) -> list[list[str]]:
  tags = list(tags)
  if tags and isinstance(tags[0], str):
    return [tags]
  return [list(s) for s in tags]


def _first_difference(a, b):
  return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if len(x) != len(y)),
              min(len(a), len(b)))
