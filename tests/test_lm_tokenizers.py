"""Tests for metalm.lm.tokenizers."""

import collections
import os

import numpy as np
import pytest

from metalm.lm import tokenizers

CORPUS = [
    "the cat sat on the mat. the cat ate the rat.",
    "a hat, a mat, a cat: that is that!",
    "naïve café — 東京 と 大阪 🙂 the end",
] * 3
TEXTS = ["", "hello world", "naïve café 東京 🙂\n\ttabs  and  spaces", "x_y__z 123 4.5e-6"]


def test_byte_round_trip_including_non_ascii():
  tok = tokenizers.byte_tokenizer()
  assert tok.vocab_size == 256 + len(tokenizers.SPECIALS)
  for text in TEXTS:
    ids = tok.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert len(ids) == len(text.encode("utf-8")) + 2
    assert tok.decode(ids) == text


def naive_bpe_merges(texts, vocab_size):
  """Textbook BPE: recount every pair of the corpus before each merge."""
  base = 256 + len(tokenizers.SPECIALS)
  words = collections.Counter(tuple(p.encode("utf-8")) for t in texts
                              for p in tokenizers._PIECES.findall(t))
  merges = []
  while base + len(merges) < vocab_size:
    pairs = collections.Counter()
    for word, count in words.items():
      for pair in zip(word, word[1:], strict=False):
        pairs[pair] += count
    if not pairs or max(pairs.values()) < 2:
      break
    best = min(pairs, key=lambda p: (-pairs[p], p))
    merges.append(best)
    words = collections.Counter({tokenizers._replace(w, best, base + len(merges) - 1): c
                                 for w, c in words.items()})
  return tuple(merges)


@pytest.mark.parametrize("texts", [
    CORPUS, ["aaaa aaa aa a bbbb abab aabb " * 3, "aaaaaaaa ab" * 2],
    [" ".join(map(str, np.random.default_rng(0).integers(0, 40, 300)))]])
def test_bpe_merges_equal_the_textbook_algorithm(texts):
  """The incremental counts give the merges of recounting everything, in order, to
  exhaustion (runs of one symbol, where pairs overlap, included)."""
  assert tokenizers.train_bpe(texts, 10_000).merges == naive_bpe_merges(texts, 10_000)


def test_bpe_merges_on_a_real_corpus_equal_the_textbook_algorithm(data_dir):
  from metalm.data import trec  # pylint: disable=import-outside-toplevel
  questions = trec.read_questions(os.path.join(data_dir, trec.ZIP_PATH))
  texts = [q for label in sorted(questions) for q in questions[label]][:2000]
  assert tokenizers.train_bpe(texts, 600).merges == naive_bpe_merges(texts, 600)


def test_bpe_round_trip_and_fewer_tokens_on_training_corpus():
  tok = tokenizers.train_bpe(CORPUS, vocab_size=320)
  assert 256 + len(tokenizers.SPECIALS) < tok.vocab_size <= 320
  byte_tok = tokenizers.byte_tokenizer()
  for text in CORPUS + TEXTS:
    assert tok.decode(tok.encode(text)) == text
  bpe_count = sum(len(tok.encode(t)) for t in CORPUS)
  byte_count = sum(len(byte_tok.encode(t)) for t in CORPUS)
  assert bpe_count < 0.6 * byte_count


def test_bpe_training_is_deterministic():
  a = tokenizers.train_bpe(CORPUS, vocab_size=300)
  b = tokenizers.train_bpe(list(CORPUS), vocab_size=300)
  assert a == b and a.merges


def test_save_load_equality(tmp_path):
  tok = tokenizers.train_bpe(CORPUS, vocab_size=300)
  path = str(tmp_path / "tokenizer.json")
  tok.save(path)
  loaded = tokenizers.load(path)
  assert loaded == tok
  assert loaded.encode(CORPUS[0]) == tok.encode(CORPUS[0])


def test_encode_batch_pads_and_masks():
  tok = tokenizers.byte_tokenizer()
  ids_BxL, mask_BxL = tok.encode_batch(["ab", "abcd", ""], add_eos=True)
  assert ids_BxL.dtype == np.int32 and ids_BxL.shape == (3, 5)
  np.testing.assert_array_equal(mask_BxL.sum(1), [3, 5, 1])
  assert (ids_BxL[~mask_BxL] == tok.pad_id).all()
  assert tok.decode(ids_BxL[0]) == "ab"
  short, short_mask = tok.encode_batch(["abcdef"], max_length=3)
  assert short.shape == (1, 3) and short_mask.all()


def never_called():
  raise AssertionError("for_run read the training texts; it should not have.")


def test_for_run_byte_writes_the_file_and_ignores_texts(tmp_path):
  workdir = str(tmp_path / "run")  # Created by for_run.
  tok = tokenizers.for_run({"name": "byte", "vocab_size": 0}, never_called, workdir)
  assert tok == tokenizers.byte_tokenizer()
  assert tokenizers.load(f"{workdir}/{tokenizers.FILENAME}") == tok
  assert tokenizers.for_run({"name": "byte", "vocab_size": 0}, never_called, workdir) == tok


def test_for_run_bpe_trains_saves_and_reloads_on_resume(tmp_path):
  config = {"name": "bpe", "vocab_size": 300}
  tok = tokenizers.for_run(config, lambda: CORPUS, str(tmp_path))
  assert tok == tokenizers.train_bpe(CORPUS, 300) and tok.merges
  assert tokenizers.load(str(tmp_path / tokenizers.FILENAME)) == tok
  # Resume: read back, never retrained (the texts are not even asked for).
  assert tokenizers.for_run(config, never_called, str(tmp_path)) == tok
  for other in ({"name": "bpe", "vocab_size": 400}, {"name": "byte", "vocab_size": 0}):
    with pytest.raises(ValueError, match=r"tokenizer\.json holds .*vocab_size=300.*"
                       r"--config\.tokenizer\.name=bpe --config\.tokenizer\.vocab_size=300"):
      tokenizers.for_run(other, never_called, str(tmp_path))


def test_for_run_early_stop_resumes_with_the_same_config(tmp_path):
  config = {"name": "bpe", "vocab_size": 5000}  # CORPUS runs out of pairs long before.
  tok = tokenizers.for_run(config, CORPUS, str(tmp_path))
  assert tok.vocab_size < 5000
  assert tokenizers.for_run(config, never_called, str(tmp_path)) == tok


def test_for_run_bpe_only_knows_the_texts_it_was_given(tmp_path):
  train, test_only = ["the cat sat on the mat"] * 3, ["zebra quokka zebra quokka"] * 3
  tok = tokenizers.for_run({"name": "bpe", "vocab_size": 300}, train, str(tmp_path))
  pieces = tok.token_bytes()[261:]
  assert pieces and all(p.decode() in train[0] for p in pieces)
  leaky = tokenizers.train_bpe(train + test_only, 300)  # The check can fail.
  assert any(p.decode() not in train[0] for p in leaky.token_bytes()[261:])


def test_check_config_names_the_problem():
  with pytest.raises(ValueError, match=r"Unknown config.tokenizer.name 'wordpiece'; "
                     "known names: byte, bpe"):
    tokenizers.check_config({"name": "wordpiece", "vocab_size": 0})
  with pytest.raises(ValueError, match=r"vocab_size=260 is too small for 'bpe'.*261"):
    tokenizers.check_config({"name": "bpe", "vocab_size": 260})
  with pytest.raises(ValueError, match=r"does not apply to 'byte'"):
    tokenizers.check_config({"name": "byte", "vocab_size": 1024})
  tokenizers.check_config({"name": "bpe", "vocab_size": 261})
