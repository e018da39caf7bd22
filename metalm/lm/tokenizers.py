"""Byte-level tokenizers: plain bytes and byte-level BPE trained on a local corpus.

Ids 0..255 are bytes, the next five are the special tokens (pad, bos, eos, mask, unk) and
BPE merges follow. A tokenizer saves to and loads from JSON so it travels beside a
checkpoint. No downloads and no third-party tokenizer packages.

Reference: Sennrich, Haddow & Birch, 2016, arXiv:1508.07909 (BPE).
"""

import collections
import dataclasses
import heapq
import json
import os
import re
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

SPECIALS = ("<pad>", "<bos>", "<eos>", "<mask>", "<unk>")
NUM_BYTES = 256
# A run's tokenizer, beside its checkpoints (see ``for_run``).
FILENAME = "tokenizer.json"
# ``config.tokenizer.name`` values that ``for_run`` takes.
NAMES = ("byte", "bpe")
# Splits text into words with their leading space, digit runs, punctuation runs and
# whitespace, so merges never cross word boundaries. Every character matches one branch,
# so the pieces always concatenate back to the text.
_PIECES = re.compile(r" ?[^\W\d_]+| ?\d+| ?[^\s\w]+| ?_+|\s+")


@dataclasses.dataclass(frozen=True)
class Tokenizer:
  """A byte-level tokenizer; ``merges`` empty is the plain byte tokenizer.

  Attributes:
    merges: ``(left_id, right_id)`` pairs in merge order; merge ``i`` makes token id
      ``NUM_BYTES + len(SPECIALS) + i``.
  """

  merges: tuple[tuple[int, int], ...] = ()

  @property
  def vocab_size(self) -> int:
    return NUM_BYTES + len(SPECIALS) + len(self.merges)

  pad_id = NUM_BYTES
  bos_id = NUM_BYTES + 1
  eos_id = NUM_BYTES + 2
  mask_id = NUM_BYTES + 3
  unk_id = NUM_BYTES + 4

  def token_bytes(self) -> list[bytes]:
    """The bytes each id stands for (empty for special tokens)."""
    table = [bytes([i]) for i in range(NUM_BYTES)] + [b""] * len(SPECIALS)
    for left, right in self.merges:
      table.append(table[left] + table[right])
    return table

  def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Token ids of ``text`` (UTF-8 bytes, then merges applied in rank order)."""
    ranks = _ranks(self)
    ids = [self.bos_id] if add_bos else []
    for piece in _PIECES.findall(text):
      ids.extend(_merge_piece(tuple(piece.encode("utf-8")), ranks))
    if add_eos:
      ids.append(self.eos_id)
    return ids

  def decode(self, ids: Iterable[int]) -> str:
    """Text of ``ids``; special tokens and padding are dropped."""
    table = self.token_bytes()
    data = b"".join(table[int(i)] for i in ids if 0 <= int(i) < len(table))
    return data.decode("utf-8", errors="replace")

  def encode_batch(
      self,
      texts: Sequence[str],
      *,
      max_length: int | None = None,
      add_bos: bool = False,
      add_eos: bool = False,
  ) -> tuple[np.ndarray, np.ndarray]:
    """Encodes, truncates and right-pads a batch.

    Returns:
      ``(ids_BxL, mask_BxL)``: int32 ids padded with ``pad_id`` and a bool mask that is
      True on real tokens. ``L`` is ``max_length`` or the longest encoding.
    """
    encoded = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
    length = max_length if max_length is not None else max((len(e) for e in encoded),
                                                           default=0)
    ids_BxL = np.full((len(texts), length), self.pad_id, np.int32)
    mask_BxL = np.zeros((len(texts), length), bool)
    for row, ids in enumerate(encoded):
      ids = ids[:length]
      ids_BxL[row, :len(ids)] = ids
      mask_BxL[row, :len(ids)] = True
    return ids_BxL, mask_BxL

  def save(self, path: str, **metadata) -> None:
    """Writes the tokenizer as JSON, with ``metadata`` as extra top-level fields."""
    with open(path, "w", encoding="utf-8") as f:
      json.dump({**metadata, "format": "metalm-byte-bpe", "version": 1,
                 "specials": list(SPECIALS), "merges": [list(m) for m in self.merges]}, f)


def byte_tokenizer() -> Tokenizer:
  """The default tokenizer: UTF-8 bytes plus the special tokens."""
  return Tokenizer()


def load(path: str) -> Tokenizer:
  """Reads a tokenizer written by ``Tokenizer.save``."""
  with open(path, encoding="utf-8") as f:
    data = json.load(f)
  if data.get("format") != "metalm-byte-bpe" or tuple(data["specials"]) != SPECIALS:
    raise ValueError(f"{path} is not a metalm byte-level tokenizer file.")
  return Tokenizer(tuple((int(a), int(b)) for a, b in data["merges"]))


def check_config(config: Mapping, where: str = "config.tokenizer") -> None:
  """Raises ValueError unless ``config`` (``name``, ``vocab_size``) names a tokenizer.

  ``name`` is one of ``NAMES``; ``"bpe"`` needs ``vocab_size`` >= 261 (the bytes and
  special tokens), ``"byte"`` takes 0 (or 261, its size).
  """
  name, vocab_size = config["name"], config["vocab_size"]
  base = NUM_BYTES + len(SPECIALS)
  if name not in NAMES:
    raise ValueError(f"Unknown {where}.name {name!r}; known names: {', '.join(NAMES)}.")
  if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
    raise ValueError(f"{where}.vocab_size must be an integer; got {vocab_size!r}.")
  if name == "bpe" and vocab_size < base:
    raise ValueError(f"{where}.vocab_size={vocab_size} is too small for 'bpe': it needs "
                     f"at least {base} ids ({NUM_BYTES} bytes and {len(SPECIALS)} special "
                     "tokens) plus the merges, e.g. 1024.")
  if name == "byte" and vocab_size not in (0, base):
    raise ValueError(f"{where}.vocab_size={vocab_size} does not apply to 'byte' (always "
                     f"{base} ids): leave it 0, or set {where}.name='bpe'.")


def for_run(config: Mapping, train_texts: Iterable[str] | Callable[[], Iterable[str]],
            workdir: str) -> Tokenizer:
  """The tokenizer of a run: ``<workdir>/tokenizer.json`` if it exists, else made and saved.

  A new run gets the byte tokenizer (``config["name"] == "byte"``) or byte-level BPE
  trained by ``train_bpe`` on ``train_texts`` up to ``config["vocab_size"]`` ids
  (``"bpe"``; deterministic for the same texts in the same order); either is written to
  ``<workdir>/tokenizer.json`` before it is returned. A resumed run reads the file back
  and never retrains. Pass only the meta-train texts: whatever is passed shapes the merges.

  Args:
    config: ``name`` and ``vocab_size`` (``config.tokenizer``; see ``check_config``).
    train_texts: the texts to train BPE on, or a function returning them (called only
      when BPE is trained, so a resumed run need not read them).
    workdir: the run directory (created if missing).

  Raises:
    ValueError: a bad ``config``, or an existing file made for another ``config`` (the
      message names the file, what it holds, and the flags that resume the run).
  """
  check_config(config)
  wanted = _settings(config["name"], config["vocab_size"])
  path = os.path.join(workdir, FILENAME)
  if os.path.exists(path):
    tokenizer = load(path)
    with open(path, encoding="utf-8") as f:
      saved = json.load(f).get("trained_for") or _settings(
          "bpe" if tokenizer.merges else "byte", tokenizer.vocab_size)
    if saved != wanted:
      raise ValueError(
          f"{path} holds the tokenizer this run was started with (name={saved['name']!r}, "
          f"vocab_size={saved['vocab_size']}), but config.tokenizer asks for "
          f"name={wanted['name']!r}, vocab_size={wanted['vocab_size']}. Resume with "
          f"--config.tokenizer.name={saved['name']} "
          f"--config.tokenizer.vocab_size={saved['vocab_size']}, or start a new run in "
          "another --workdir (deleting the file would not match the checkpoints).")
    return tokenizer
  if wanted["name"] == "byte":
    tokenizer = byte_tokenizer()
  else:
    texts = train_texts() if callable(train_texts) else train_texts
    tokenizer = train_bpe(texts, wanted["vocab_size"])
  os.makedirs(workdir, exist_ok=True)
  partial = f"{path}.{os.getpid()}.partial"
  tokenizer.save(partial, trained_for=wanted)
  os.replace(partial, path)  # Atomic: a killed run leaves no half-written file.
  return tokenizer


def _settings(name: str, vocab_size: int) -> dict:
  """What a tokenizer file was made for; the byte tokenizer has one size."""
  return {"name": name, "vocab_size": 0 if name == "byte" else int(vocab_size)}


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
  """Learns byte-level BPE merges on a corpus until ``vocab_size`` ids exist.

  Each step merges the most frequent adjacent pair; ties go to the smallest
  ``(left_id, right_id)``, so training is deterministic. Stops early when no pair occurs
  twice. Pair counts are updated only in the words a merge touches, and the next pair
  comes from a heap, so a merge costs what it changes rather than a pass over the corpus.

  Reference: Sennrich, Haddow & Birch, 2016, arXiv:1508.07909.
  """
  base = NUM_BYTES + len(SPECIALS)
  if vocab_size < base:
    raise ValueError(f"vocab_size={vocab_size} is below the {base} byte and special ids.")
  counted = collections.Counter()
  for text in texts:
    for piece in _PIECES.findall(text):
      counted[tuple(piece.encode("utf-8"))] += 1
  words, counts = list(counted), list(counted.values())
  pairs = collections.Counter()  # Adjacent pairs, overlapping ones included.
  where = collections.defaultdict(set)  # Pair -> indices of the words that hold it.
  for i, word in enumerate(words):
    for pair in zip(word, word[1:], strict=False):
      pairs[pair] += counts[i]
      where[pair].add(i)
  heap = [(-count, pair) for pair, count in pairs.items()]
  heapq.heapify(heap)
  merges = []
  while base + len(merges) < vocab_size and heap:
    negative, best = heapq.heappop(heap)
    if pairs.get(best, 0) != -negative:
      continue  # A count that has changed since this entry was pushed.
    if -negative < 2:
      break
    new_id = base + len(merges)
    merges.append(best)
    changed = set()
    for i in sorted(where.pop(best)):
      old, words[i] = words[i], _replace(words[i], best, new_id)
      for pair in zip(old, old[1:], strict=False):
        pairs[pair] -= counts[i]
        where[pair].discard(i)
        changed.add(pair)
      for pair in zip(words[i], words[i][1:], strict=False):
        pairs[pair] += counts[i]
        where[pair].add(i)
        changed.add(pair)
    for pair in changed:
      if pairs[pair] > 0:
        heapq.heappush(heap, (-pairs[pair], pair))
      else:
        del pairs[pair]
        where.pop(pair, None)
  return Tokenizer(tuple(merges))


def _replace(word: tuple[int, ...], pair: tuple[int, int], new_id: int) -> tuple[int, ...]:
  out, i = [], 0
  while i < len(word):
    if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
      out.append(new_id)
      i += 2
    else:
      out.append(word[i])
      i += 1
  return tuple(out)


_RANK_CACHE: dict[tuple, dict] = {}


def _ranks(tokenizer: Tokenizer) -> dict[tuple[int, int], int]:
  if tokenizer.merges not in _RANK_CACHE:
    _RANK_CACHE.clear()
    _RANK_CACHE[tokenizer.merges] = {m: i for i, m in enumerate(tokenizer.merges)}
  return _RANK_CACHE[tokenizer.merges]


def _merge_piece(word: tuple[int, ...], ranks: dict) -> tuple[int, ...]:
  base = NUM_BYTES + len(SPECIALS)
  while len(word) > 1:
    pair = min(zip(word, word[1:], strict=False), key=lambda p: ranks.get(p, len(ranks)))
    rank = ranks.get(pair)
    if rank is None:
      break
    word = _replace(word, pair, base + rank)
  return word
