"""Tests for metalm.lm.tokenizers."""

import numpy as np

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
