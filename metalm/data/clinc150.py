"""CLINC150 intents as class-disjoint few-shot splits.

Larson et al. 2019, "An Evaluation Dataset for Intent Classification and Out-of-Scope
Prediction" (EMNLP-IJCNLP, arXiv:1909.02027): crowd-sourced queries for 150 intents in
10 domains of 15 intents.

Source (``$METALM_DATA_DIR/clinc150``, see its ``PROVENANCE.md``): ``data_full.json``
(``train`` / ``val`` / ``test`` lists of ``[query, intent]``; the ``oos_*`` out-of-scope
lists are not used) and ``domains.json`` (domain -> intents). Each intent pools its
queries of all three lists: 100 + 20 + 30 = 150 per intent.

Class splits:
  * ``"domain"`` (default): whole domains, in ``domains.json`` order: meta-train
    banking, credit_cards, kitchen_and_dining, home, auto_and_commute (75 intents);
    meta-val travel, utility (30); meta-test work, small_talk, meta (45). Test intents
    come from domains never seen in training.
  * ``"intent"``: the 150 sorted intents permuted by ``default_rng(0)``: 75 / 30 / 45,
    domains mixed.
"""

import json

from metalm.data import text_fewshot
from metalm.lm import tokenizers

DOMAIN_SPLIT = {
    "train": ("banking", "credit_cards", "kitchen_and_dining", "home", "auto_and_commute"),
    "val": ("travel", "utility"),
    "test": ("work", "small_talk", "meta"),
}
NUM_INTENTS = {"train": 75, "val": 30, "test": 45}
SPLITS = ("domain", "intent")
# sha256 of the files as listed in clinc150/PROVENANCE.md.
SHA256 = {
    "data_full.json": "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0",
    "domains.json": "b947b579d3b8e74b06f93b01083d8efaff2888b43a3e362533bd88a6e1211b3a",
}
_FIX = ("Set METALM_DATA_DIR to the folder that holds clinc150/data_full.json and "
        "clinc150/domains.json (or pass data_dir=); both are data/data_full.json and "
        "data/domains.json of https://github.com/clinc/oos-eval.")


def load(data_dir=None, *, split: str = "domain", max_len: int = 64,
         tokenizer: tokenizers.Tokenizer | None = None) -> text_fewshot.TextSplits:
  """The meta-train / meta-val / meta-test intents, tokenized.

  Args:
    data_dir: the datasets folder holding ``clinc150/``; ``$METALM_DATA_DIR`` by default.
    split: ``"domain"`` or ``"intent"`` (see the module docstring).
    max_len: L, tokens per query (queries are at most 136 characters).
    tokenizer: the byte tokenizer by default.

  Raises:
    FileNotFoundError: a file is missing (the message names it and where to get it).
    ValueError: a file cannot be parsed (the message gives its sha256 and the listed one).
  """
  if split not in SPLITS:
    raise ValueError(f"Unknown CLINC150 split {split!r}; use one of {SPLITS}.")
  root = text_fewshot.data_root(data_dir, "CLINC150", _FIX) / "clinc150"
  queries = read_queries(text_fewshot.require(root / "data_full.json", "CLINC150", _FIX))
  domains = read_domains(text_fewshot.require(root / "domains.json", "CLINC150", _FIX))
  if split == "domain":
    missing = sorted({d for ds in DOMAIN_SPLIT.values() for d in ds} - set(domains))
    if missing:
      raise text_fewshot.corrupt("CLINC150", root / "domains.json",
                                 SHA256["domains.json"], f"no domains {missing}", _FIX)
    names = {s: tuple(i for d in ds for i in domains[d]) for s, ds in DOMAIN_SPLIT.items()}
  else:
    names = text_fewshot.permuted_split(list(queries), NUM_INTENTS["val"],
                                        NUM_INTENTS["test"], seed=0)
  unknown = sorted({i for n in names.values() for i in n} - set(queries))
  if unknown:
    raise text_fewshot.corrupt("CLINC150", root / "data_full.json",
                               SHA256["data_full.json"],
                               f"no queries of the intents {unknown[:5]}", _FIX)
  return text_fewshot.make_splits(queries, names, max_len=max_len, tokenizer=tokenizer)


def read_queries(path) -> dict[str, list[str]]:
  """Intent -> its in-scope queries (``train``, then ``val``, then ``test``)."""
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
    queries = {}
    for part in ("train", "val", "test"):
      for text, intent in data[part]:
        queries.setdefault(str(intent), []).append(str(text))
  except (ValueError, KeyError, TypeError, OSError) as error:
    raise text_fewshot.corrupt("CLINC150", path, SHA256["data_full.json"], repr(error),
                               _FIX) from error
  return queries


def read_domains(path) -> dict[str, list[str]]:
  """Domain -> its intents."""
  try:
    with open(path, encoding="utf-8") as f:
      domains = json.load(f)
    return {str(d): [str(i) for i in intents] for d, intents in domains.items()}
  except (ValueError, AttributeError, TypeError, OSError) as error:
    raise text_fewshot.corrupt("CLINC150", path, SHA256["domains.json"], repr(error),
                               _FIX) from error
