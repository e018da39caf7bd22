"""Reuters-21578 topics (single-topic newswire stories) as class-disjoint few-shot splits.

Lewis 1997, "Reuters-21578, Distribution 1.0": 21578 Reuters stories from 1987 in SGML,
each with zero or more TOPICS categories.

Source: ``$METALM_DATA_DIR/reuters21578/reut2-000.sgm.gz`` ... ``reut2-021.sgm.gz`` (the
22 SGML files, gzip-compressed; plain ``.sgm`` files are read too; see
``reuters21578/PROVENANCE.md``), latin-1. Each ``<REUTERS>`` element holds
``<TOPICS><D>topic</D>...</TOPICS>`` and ``<TEXT>`` with ``<TITLE>`` and ``<BODY>``.

A document is kept when it has exactly one topic and a title or body (all LEWISSPLIT
parts pooled); its text is ``TITLE. BODY`` with SGML entities decoded and whitespace
collapsed. Topics with at least ``min_examples`` (20) such documents are the classes:
33. Their sorted names permuted by ``default_rng(0)`` give 18 meta-train, 5 meta-val and
10 meta-test topics.
"""

import collections
import gzip
import html
import re
import zlib

from metalm.data import text_fewshot
from metalm.lm import tokenizers

NUM_FILES = 22
_DOC = re.compile(r"<REUTERS\b[^>]*>(.*?)</REUTERS>", re.S)
_TOPICS = re.compile(r"<TOPICS>(.*?)</TOPICS>", re.S)
_D = re.compile(r"<D>(.*?)</D>", re.S)
_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.S)
_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.S)
# sha256 of the files as listed in reuters21578/PROVENANCE.md.
SHA256 = {f"reut2-{i:03d}.sgm.gz": h for i, h in enumerate((
    "0f77a45ac8e1f7e32a5f1d24bfdaf29efccb39c4cae575d95f8810512a14ba14",
    "8d13f8d173d40301cb80c8068607a55bb2f2b93a558ac8116a3b001e1061028f",
    "d8d5b1b87cbfcc595dbbe56f3cd26712fc9eb1f7abbb3fb1ac383d562241c0b1",
    "4e4f1b4ec01b74a282d95d24b29df096f0f8ca06ca7e3e5af2d20a68c9116c15",
    "0a6e120206a1104f10d6bad2ae5a9353f6890ede183f839ea87b0929ff2739d7",
    "01fe4b95a67360ea8547c8447a798c880dcf33f2c9a27b459c015b5c34cc63ce",
    "f0ef0ec8fc20648a1c6292bebc59b3a46751ccd79ffaa0b818753de017bc3f8b",
    "a2f579938e8a15394c2a4329028f08942aae586e89d23f3ae85eae1808d7810b",
    "4771ae6a9245adf372a8d7ed218eee1182c43ecb72923271b30dab8794ba2b42",
    "fd32400d3ed0820a05317b288ca67664ad7d23fc4b23e419b03bb6322de694ab",
    "35f618957db0bce7f85a21a1d2979b09f57f3d8e5cd3dad67f037a20e1a94ae8",
    "2d9d48e367ca4b005cd5609cf76e4efe913d67225b7e535908c9d30e82531caf",
    "d5a7374109b8b6cf7867789fec81ae15e4326fb4b2bf5e5ee2e1506076b7b4ac",
    "847e370b5d0e715492f81a73eb6f2e1c681cedcd642f7e9c5129efc2012e083b",
    "15a7b7d4c45996a87dd81ce6fb21beccd1f692b1814f617c0a5bc4036b8b4630",
    "9e8e36db762714d82a4e52e7a1b33878898543fa90dfc152bf30147067f5fa9b",
    "5b0a342c29169f5accfa7e619caaf5b947964618b0cdfdcbd30871449d3116f6",
    "1ee9d08c30e92b08f253ba82ce8dcdcd6e68fc9271f0a39dc091233a8f5fa140",
    "f4dc2dd103889eca875cecdc87e58785f46e577741b38e5fe4d74cd6734f1c8d",
    "a6ecbaefc2f796e8e532ee41076e566aefbdc7e3417f627e5d04652847df227b",
    "92b986cdce039f09c9df6e9c4bf3dec323668ee461cd08a6c46ed0dfbccfa4cd",
    "2d0006344683b79a30aa02e6e9602846498117bfd5740a0db8ae91e30fe422b2"))}
_FIX = ("Set METALM_DATA_DIR to the folder that holds reuters21578/reut2-000.sgm.gz ... "
        "reut2-021.sgm.gz (or pass data_dir=); they are the SGML files of Reuters-21578, "
        "Distribution 1.0 (http://www.daviddlewis.com/resources/testcollections/"
        "reuters21578/), gzip-compressed or not.")


def load(data_dir=None, *, max_len: int = 128, min_examples: int = 20, num_val: int = 5,
         num_test: int = 10, tokenizer: tokenizers.Tokenizer | None = None,
         ) -> text_fewshot.TextSplits:
  """The meta-train / meta-val / meta-test topics, tokenized (``TITLE. BODY``, truncated).

  Args:
    data_dir: the datasets folder holding ``reuters21578/``; ``$METALM_DATA_DIR`` by
      default.
    max_len: L, tokens per story (the title and the start of the body).
    min_examples: single-topic stories a topic needs to be a class.
    num_val: meta-val classes.
    num_test: meta-test classes.
    tokenizer: the byte tokenizer by default.

  Raises:
    FileNotFoundError: a file is missing (the message names it and where to get it).
    ValueError: a file cannot be read (the message gives its sha256 and the listed one).
  """
  root = text_fewshot.data_root(data_dir, "Reuters-21578", _FIX) / "reuters21578"
  stories = collections.defaultdict(list)
  for i in range(NUM_FILES):
    for topic, text in read_file(_file(root, i)):
      stories[topic].append(text)
  kept = {t: s for t, s in stories.items() if len(s) >= min_examples}
  names = text_fewshot.permuted_split(list(kept), num_val, num_test, seed=0)
  return text_fewshot.make_splits(kept, names, max_len=max_len, tokenizer=tokenizer)


def _file(root, index):
  gz = root / f"reut2-{index:03d}.sgm.gz"
  plain = gz.with_suffix("")
  return plain if plain.is_file() and not gz.is_file() else text_fewshot.require(
      gz, "Reuters-21578", _FIX)


def read_file(path) -> list[tuple[str, str]]:
  """``(topic, text)`` of each single-topic story with a title or body in one file."""
  try:
    if path.suffix == ".gz":
      with gzip.open(path, "rb") as f:
        raw = f.read()
    else:
      raw = path.read_bytes()
    documents = _DOC.findall(raw.decode("latin-1"))
    if not documents:
      raise ValueError("no <REUTERS> documents")
  except (OSError, EOFError, zlib.error, ValueError) as error:
    name = path.name if path.suffix == ".gz" else path.name + ".gz"
    raise text_fewshot.corrupt("Reuters-21578", path, SHA256.get(name, "(not listed)"),
                               repr(error), _FIX) from error
  out = []
  for document in documents:
    topics = _TOPICS.search(document)
    labels = _D.findall(topics.group(1)) if topics else []
    parts = [_clean(m.group(1)) for m in (_TITLE.search(document), _BODY.search(document))
             if m is not None]
    text = ". ".join(p for p in parts if p)
    if len(labels) == 1 and text:
      out.append((labels[0], text))
  return out


def _clean(sgml: str) -> str:
  text = html.unescape(sgml)
  text = re.sub(r"[\x00-\x08\x0b-\x1f]", " ", text)  # &#3; and other control characters.
  text = re.sub(r"\s+", " ", text).strip()
  return text.removesuffix(" Reuter").removesuffix(" REUTER")
