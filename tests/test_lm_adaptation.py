"""Brown genres as language-modelling tasks: loader, sampler, LM loss, the experiment."""

import json
import math
import os
import subprocess
import sys
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.lm_adaptation.configs import brown as configs
from metalm.data import brown
from metalm.lm import losses, tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTS = {"adventure": 4637, "belles_lettres": 7209, "editorial": 2997, "fiction": 4249,
          "government": 3032, "hobbies": 4193, "humor": 1053, "learned": 7734, "lore": 4881,
          "mystery": 3886, "news": 4623, "religion": 1716, "reviews": 1751,
          "romance": 4431, "science_fiction": 948}


def test_real_zip_has_15_genres_in_a_fixed_disjoint_split(data_dir):
  splits = brown.load(data_dir, max_len=64)
  assert splits.test.names == ("editorial", "religion", "fiction")
  assert splits.val.names == ("news", "adventure")
  names = [n for split in splits for n in split.names]
  assert sorted(names) == sorted(brown.GENRES) and len(set(names)) == 15
  counts = {n: len(t) for split in splits
            for n, t in zip(split.names, split.tokens, strict=True)}
  assert counts == COUNTS
  assert sum(COUNTS.values()) == 57340
  tokens = splits.train.tokens[0]
  assert tokens.dtype == np.int32 and tokens.shape == (3032, 64)
  assert (tokens[:, 0] == tokenizers.Tokenizer.bos_id).all()
  first = splits.train.texts[0][0]
  assert first.startswith("The Office of Business Economics (OBE) of the U.S.")
  assert tokenizers.byte_tokenizer().decode(tokens[0]) == first[:63]  # <bos> + 63 bytes.


def write_brown(path, genres=brown.GENRES, sentences=4):
  """The layout of NLTK's brown.zip: ``brown/cats.txt`` and one tagged file per genre."""
  path.parent.mkdir(parents=True, exist_ok=True)
  ids = [f"c{chr(ord('a') + i)}01" for i in range(len(genres))]
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("brown/cats.txt",
                     "".join(f"{i} {g}\n" for i, g in zip(ids, genres, strict=True)))
    for i, genre in zip(ids, genres, strict=True):
      lines = [f"\n\n\tThe/at {genre}/nn said/vbd ``/`` no/at {n}/cd ''/'' ./.\n"
               for n in range(sentences)]
      archive.writestr(f"brown/{i}", "".join(lines))
  return path


def test_generated_zip_reads_and_samples_genre_tasks(tmp_path):
  write_brown(tmp_path / brown.ZIP_PATH)
  splits = brown.load(tmp_path, max_len=40)
  assert len(splits.train.names) == 10 and splits.test.texts[0][2] == (
      f'The {splits.test.names[0]} said "no 2".')
  sampler = brown.sampler(splits.test.tokens, shots=1, queries=3, seed=0)
  tasks = sampler.genre_batch(1, 0, 5)
  assert tasks.support_x.shape == (5, 1, 40) and tasks.query_x.shape == (5, 3, 40)
  assert (tasks.support_y == tasks.support_x).all() and (tasks.query_y == tasks.query_x).all()
  genre = tokenizers.byte_tokenizer().encode(splits.test.names[1])
  assert all(list(row[5:5 + len(genre)]) == genre for row in tasks.query_x.reshape(-1, 40))
  mixed = sampler.batch(3, 8)
  np.testing.assert_array_equal(mixed.query_x, sampler.batch(3, 8).query_x)
  with pytest.raises(ValueError, match="need 5 sentences per genre; a genre has 4"):
    brown.sampler(splits.test.tokens, shots=2, queries=3, seed=0)


def test_missing_and_corrupt_zips_say_what_to_do(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"brown\.zip does not exist.*nltk\.downloader"):
    brown.load(tmp_path)
  path = tmp_path / brown.ZIP_PATH
  path.parent.mkdir(parents=True)
  path.write_bytes(b"not a zip")
  with pytest.raises(ValueError, match=f"cannot read {path}.*{brown.SHA256}"):
    brown.load(tmp_path)
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("brown/ca01", "The/at\n")  # No cats.txt.
  with pytest.raises(ValueError, match="cats.txt"):
    brown.load(tmp_path)


def test_lm_loss_ignores_padding_and_matches_a_hand_computed_value():
  # Tokens [0, 1, pad]: one real target (1 after 0); the pad target is masked.
  tokens = jnp.array([[0, 1, 2]])
  logits = jnp.array([[[0.0, math.log(3.0), 0.0], [5.0, -1.0, 2.0], [0.0, 0.0, 0.0]]])
  loss, metrics = losses.lm_loss(logits, tokens, pad_id=2)
  np.testing.assert_allclose(loss, math.log(5 / 3), rtol=1e-6)
  np.testing.assert_allclose(metrics["perplexity"], 5 / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics["bits_per_token"], math.log2(5 / 3), rtol=1e-6)
  other, _ = losses.lm_loss(logits.at[0, 1].set(jnp.array([-9.0, 9.0, 0.0])), tokens, 2)
  np.testing.assert_allclose(other, loss, rtol=1e-6)


def test_config_arguments_are_checked():
  assert configs.parse("reptile,smoke") == ("reptile", True)
  baseline = configs.get_config("pretrain")
  assert baseline.method.inner_steps == 0 and baseline.data.train_queries == 15
  assert baseline.eval == configs.get_config("maml").eval  # The same fine-tuning.
  with pytest.raises(ValueError, match="Bad config argument 'maml,reptile'"):
    configs.parse("maml,reptile")


def test_tokenizer_config_defaults_to_bytes_and_sizes_the_model():
  config = configs.get_config("maml,smoke")
  assert config.tokenizer.to_dict() == {"name": "byte", "vocab_size": 0}
  assert config.model.vocab_size == 0  # Set from the tokenizer by main.load_data.


# pretrain runs with a BPE tokenizer of 300 ids, the others with the default bytes.
@pytest.mark.parametrize("name", ["maml", "reptile", "pretrain"])
def test_smoke_run_trains_and_evaluates(name, tmp_path, data_dir, user_env):
  bpe = ["--config.tokenizer.name=bpe", "--config.tokenizer.vocab_size=300"]
  result = subprocess.run(
      [sys.executable, "-m", "experiments.lm_adaptation.main",
       f"--config=experiments/lm_adaptation/configs/brown.py:{name},smoke",
       f"--workdir={tmp_path}", *(bpe if name == "pretrain" else [])],
      cwd=ROOT, capture_output=True, text=True, timeout=600,
      env={**user_env, "METALM_DATA_DIR": data_dir})
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["method"] == name and results["step"] == 3
  assert list(results["perplexity"]["genres"]) == ["editorial", "religion", "fiction"]
  for when in ("before", "after"):
    value = results["perplexity"][when]
    assert 1.0 < value["mean"] < 1000.0 and value["ci95"] > 0.0
  tokenizer = tokenizers.load(str(tmp_path / "tokenizer.json"))
  assert results["vocab_size"] == results["config"]["model"]["vocab_size"]
  assert results["vocab_size"] == tokenizer.vocab_size
  if name == "pretrain":
    assert 261 < tokenizer.vocab_size <= 300
    assert results["config"]["tokenizer"] == {"name": "bpe", "vocab_size": 300}
  else:
    assert tokenizer == tokenizers.byte_tokenizer()
  # Fine-tuning chosen on the meta-val genres: the grid's argmin, then used on test.
  tuning = results["fine_tuning"]
  assert tuning["selected_on"] == "val" and len(tuning["grid"]) == 2
  assert tuning["grid"][f"{tuning['learning_rate']},{tuning['inner_steps']}"] == min(
      tuning["grid"].values())
  assert results["inner_steps"] == tuning["inner_steps"]
