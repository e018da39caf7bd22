"""FewRel 1.0 relations (validation set) as class-disjoint few-shot splits.

Han et al. 2018, "FewRel: A Large-Scale Supervised Few-Shot Relation Classification
Dataset with State-of-the-Art Evaluation" (EMNLP, arXiv:1810.10147): Wikipedia sentences
labelled with the Wikidata relation between a head and a tail entity, 700 per relation.

Source: ``$METALM_DATA_DIR/fewrel/val_wiki.json`` (see ``fewrel/PROVENANCE.md``), the
public validation set: 16 relations x 700, ``{pid: [{"tokens", "h", "t"}, ...]}`` with
``h`` / ``t`` = ``[name, wikidata id, [[token positions], ...]]``. The 64 training
relations are not available, so all three splits come from these 16.

Each sentence is its words joined by spaces with the first mention of each entity marked
``[H] ... [/H]`` (head) and ``[T] ... [/T]`` (tail); a sentence longer than ``max_len``
tokens keeps the window centred on the two marked mentions (at the default 128 bytes,
90.4% of the 11200 sentences keep all four markers; in the others the two marked
mentions span more than ``max_len`` tokens, and the window cuts into both).

Class split: the 16 sorted relation ids permuted by ``default_rng(0)``: 8 meta-train,
3 meta-val (use 3-way episodes there) and 5 meta-test relations.
"""

import json

from metalm.data import text_fewshot
from metalm.lm import tokenizers

NUM_VAL, NUM_TEST = 3, 5
MARKERS = ("[H]", "[/H]", "[T]", "[/T]")
# sha256 of val_wiki.json as listed in fewrel/PROVENANCE.md.
SHA256 = "76bb44c2485b6faed358a3ce040eadafcc8a8835245cd7e6afc1bef672d4a0bf"
_FIX = ("Set METALM_DATA_DIR to the folder that holds fewrel/val_wiki.json (or pass "
        "data_dir=); it is data/val_wiki.json of https://github.com/thunlp/FewRel.")


def load(data_dir=None, *, max_len: int = 128,
         tokenizer: tokenizers.Tokenizer | None = None) -> text_fewshot.TextSplits:
  """The meta-train / meta-val / meta-test relations, marked and tokenized.

  Args:
    data_dir: the datasets folder holding ``fewrel/``; ``$METALM_DATA_DIR`` by default.
    max_len: L, tokens per sentence (sentences are at most about 260 characters).
    tokenizer: the byte tokenizer by default.

  Raises:
    FileNotFoundError: the file is missing (the message names it and where to get it).
    ValueError: it cannot be parsed (the message gives its sha256 and the listed one).
  """
  root = text_fewshot.data_root(data_dir, "FewRel", _FIX)
  path = text_fewshot.require(root / "fewrel" / "val_wiki.json", "FewRel", _FIX)
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
    marked = {pid: [mark(e["tokens"], e["h"][2][0], e["t"][2][0]) for e in instances]
              for pid, instances in data.items()}
  except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
    raise text_fewshot.corrupt("FewRel", path, SHA256, repr(error), _FIX) from error
  names = text_fewshot.permuted_split(list(marked), NUM_VAL, NUM_TEST, seed=0)
  texts = {pid: [text for text, _ in m] for pid, m in marked.items()}
  spans = {pid: [span for _, span in m] for pid, m in marked.items()}
  return text_fewshot.make_splits(texts, names, max_len=max_len, tokenizer=tokenizer,
                                  windows=spans)


def mark(words, head, tail) -> tuple[str, tuple[int, int]]:
  """The sentence with both mentions marked, and the character span covering them.

  Args:
    words: the sentence's words.
    head: word positions of the head mention.
    tail: word positions of the tail mention.
  """
  opens, closes = {}, {}
  for positions, name in ((head, "H"), (tail, "T")):
    opens.setdefault(min(positions), []).append(f"[{name}]")
    closes.setdefault(max(positions), []).append(f"[/{name}]")
  pieces = []
  for i, word in enumerate(words):
    pieces.extend(opens.get(i, ()))
    pieces.append(str(word))
    pieces.extend(closes.get(i, ()))
  text = " ".join(pieces)
  first = min(text.index("[H]"), text.index("[T]"))
  last = max(text.index("[/H]") + 4, text.index("[/T]") + 4)
  return text, (first, last)
