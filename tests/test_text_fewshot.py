"""Few-shot text: loaders on the real data and on generated files in the real layout,
text episodes, the transformer encoder, and a smoke run of each method family."""

import gzip
import json
import os
import subprocess
import sys
import zipfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments.fewshot_text import pipeline as fewshot_text_main
from experiments.fewshot_text.configs import anil, base, maml, protonet, r2d2
from metalm import models
from metalm.data import clinc150, episodic, fewrel, reuters21578, text_fewshot, trec
from metalm.eval import adapt
from metalm.lm import tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = tokenizers.byte_tokenizer()
# Data set -> (loader, classes per split, examples per class (None: varies), length).
REAL = {
    "clinc150": (clinc150.load, (75, 30, 45), 150, 64),
    "trec": (trec.load, (20, 5, 10), None, 64),
    "fewrel": (fewrel.load, (8, 3, 5), 700, 128),
    "reuters21578": (reuters21578.load, (18, 5, 10), None, 128),
}


def check_splits(splits, counts, per_class, max_len, min_examples=20):
  names = [set(getattr(splits, s).names) for s in text_fewshot.SPLIT_NAMES]
  assert tuple(len(n) for n in names) == counts
  assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
  for split in splits:
    assert len(split.tokens) == len(split.texts) == len(split.names)
    for tokens, texts in zip(split.tokens, split.texts, strict=True):
      assert tokens.dtype == np.int32 and tokens.shape == (len(texts), max_len)
      assert len(texts) >= min_examples if per_class is None else len(texts) == per_class
      assert tokens.min() >= 0 and tokens.max() < TOKENIZER.vocab_size
      assert (tokens[:, 0] != TOKENIZER.pad_id).all()  # No empty text.


@pytest.mark.parametrize("name", list(REAL))
def test_real_data_splits(name, data_dir):
  load, counts, per_class, max_len = REAL[name]
  splits = load(data_dir)
  check_splits(splits, counts, per_class, max_len)
  if name == "clinc150":
    assert "balance" in splits.train.names and "oos" not in splits.test.names
    assert splits.test.texts[0][0] == TOKENIZER.decode(splits.test.tokens[0][0])
    assert clinc150.load(data_dir, split="intent").test.names != splits.test.names
  if name == "fewrel":
    text = TOKENIZER.decode(splits.train.tokens[0][0])
    assert all(marker in text for marker in fewrel.MARKERS)


# ----- generated files in the real layouts -----

def write_clinc(root, intents_per_domain=2, queries=3):
  folder = root / "clinc150"
  folder.mkdir(parents=True)
  domains = {d: [f"{d}_intent{i}" for i in range(intents_per_domain)]
             for ds in clinc150.DOMAIN_SPLIT.values() for d in ds}
  rows = [[f"query {q} of {intent}", intent] for intents in domains.values()
          for intent in intents for q in range(queries)]
  data = {"train": rows[::2], "val": rows[1::4], "test": rows[3::4],
          "oos_train": [["what", "oos"]], "oos_val": [], "oos_test": []}
  (folder / "data_full.json").write_text(json.dumps(data))
  (folder / "domains.json").write_text(json.dumps(domains))
  return folder


def test_clinc150_generated_layout_and_errors(tmp_path):
  folder = write_clinc(tmp_path)
  splits = clinc150.load(tmp_path, max_len=24)
  check_splits(splits, (10, 4, 6), 3, 24, min_examples=3)
  assert splits.test.names[0] == "work_intent0"
  assert sorted(splits.test.texts[0]) == [f"query {q} of work_intent0" for q in range(3)]
  with pytest.raises(ValueError, match="Unknown CLINC150 split"):
    clinc150.load(tmp_path, split="domains")
  (folder / "data_full.json").write_text('{"train": [["cut', encoding="utf-8")
  with pytest.raises(ValueError, match=r"data_full.json.*36923c3705a59e08"):
    clinc150.load(tmp_path)
  (folder / "data_full.json").unlink()
  with pytest.raises(FileNotFoundError, match=r"clinc150/data_full.json does not exist"):
    clinc150.load(tmp_path)


def test_missing_data_dir_names_the_variable(monkeypatch):
  monkeypatch.delenv("METALM_DATA_DIR", raising=False)
  with pytest.raises(FileNotFoundError, match="METALM_DATA_DIR is unset"):
    trec.load()


def write_qc(root, labels=8, per_label=3):
  path = root / trec.ZIP_PATH
  path.parent.mkdir(parents=True)
  lines = [f"NUM:n{c} How many {q} things in class {c} ?"
           for c in range(labels) for q in range(per_label)]
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("qc/README", "generated")
    archive.writestr("qc/train.txt", "\n".join(lines[::2]).encode("latin-1") + b"\n")
    archive.writestr("qc/test.txt", "\n".join(lines[1::2] + ["HUM:rare Who \xe9 ?"])
                     .encode("latin-1"))
  return path


def test_trec_generated_layout_and_errors(tmp_path):
  path = write_qc(tmp_path)
  splits = trec.load(tmp_path, min_examples=3, num_val=2, num_test=2, max_len=40)
  check_splits(splits, (4, 2, 2), 3, 40, min_examples=3)
  assert "HUM:rare" not in {n for s in splits for n in s.names}  # 1 < min_examples.
  with pytest.raises(ValueError, match="Cannot split 8 classes"):
    trec.load(tmp_path, min_examples=3, num_val=4, num_test=4)
  path.write_bytes(b"PK\x03\x04 truncated")
  with pytest.raises(ValueError, match=r"qc.zip.*091fb01e50883014"):
    trec.load(tmp_path)
  path.unlink()
  with pytest.raises(FileNotFoundError, match=r"nltk_data/corpora/qc.zip does not exist"):
    trec.load(tmp_path)


def write_fewrel(root, relations=10, per_relation=3):
  folder = root / "fewrel"
  folder.mkdir(parents=True)
  words = ["The", "bridge", "crosses", "the", "river", "near", "the", "town", "."]
  data = {f"P{r}": [{"tokens": words + ["filler"] * (40 * i), "h": ["bridge", "Q1", [[1]]],
                     "t": ["river", "Q2", [[4]]]} for i in range(per_relation)]
          for r in range(relations)}
  # An instance whose entities sit past the first 64 characters.
  data["P0"][0] = {"tokens": ["word"] * 30 + ["Big", "Ben", "is", "in", "London"],
                   "h": ["big ben", "Q3", [[30, 31]]], "t": ["london", "Q4", [[34]]]}
  (folder / "val_wiki.json").write_text(json.dumps(data))
  return folder


def test_fewrel_generated_layout_markers_and_errors(tmp_path):
  folder = write_fewrel(tmp_path)
  splits = fewrel.load(tmp_path, max_len=64)
  check_splits(splits, (2, 3, 5), 3, 64, min_examples=3)
  text, span = fewrel.mark(["a", "b", "c", "d"], [1], [2, 3])
  assert text == "a [H] b [/H] [T] c d [/T]" and text[span[0]:span[1]] == text[2:]
  for split in splits:
    for tokens, texts in zip(split.tokens, split.texts, strict=True):
      for row, source in zip(tokens, texts, strict=True):
        decoded = TOKENIZER.decode(row)
        assert all(m in decoded for m in fewrel.MARKERS), (decoded, source)
        if len(source) > 64:
          assert decoded in source and len(decoded) == 64
  (folder / "val_wiki.json").write_text('{"P1": [{"tokens": ["x"], "h": []}]}')
  with pytest.raises(ValueError, match=r"val_wiki.json.*76bb44c2485b6fae"):
    fewrel.load(tmp_path)


def write_reuters(root, topics=5, per_topic=3):
  folder = root / "reuters21578"
  folder.mkdir(parents=True)
  docs = []
  for t in range(topics):
    for d in range(per_topic):
      docs.append(f'<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="{len(docs) + 1}">\n'
                  f"<TOPICS><D>topic{t}</D></TOPICS>\n<TEXT>&#2;\n<TITLE>STORY {d} OF "
                  f"TOPIC {t}</TITLE>\n<BODY>Prices &lt;rose&gt; today.\n Reuter\n&#3;"
                  "</BODY></TEXT>\n</REUTERS>")
  docs.append('<REUTERS TOPICS="YES"><TOPICS><D>topic0</D><D>topic1</D></TOPICS>'
              "<TEXT><TITLE>TWO TOPICS</TITLE></TEXT></REUTERS>")
  docs.append('<REUTERS TOPICS="NO"><TOPICS></TOPICS><TEXT><BODY>none</BODY></TEXT>'
              "</REUTERS>")
  for i in range(reuters21578.NUM_FILES):
    body = "<!DOCTYPE lewis SYSTEM \"lewis.dtd\">\n" + "\n".join(docs[i::22] or docs[:1])
    with gzip.open(folder / f"reut2-{i:03d}.sgm.gz", "wb") as f:
      f.write(body.encode("latin-1"))
  return folder


def test_reuters_generated_layout_and_errors(tmp_path):
  folder = write_reuters(tmp_path)
  splits = reuters21578.load(tmp_path, min_examples=3, num_val=1, num_test=2, max_len=48)
  check_splits(splits, (2, 1, 2), None, 48, min_examples=3)
  texts = {t for s in splits for ts in s.texts for t in ts}
  assert "STORY 0 OF TOPIC 0. Prices <rose> today." in texts
  assert not any("TWO TOPICS" in t or "none" == t for t in texts)
  (folder / "reut2-005.sgm.gz").write_bytes(b"\x1f\x8b\x08\x00 broken")
  with pytest.raises(ValueError, match=r"reut2-005.sgm.gz.*01fe4b95a67360ea"):
    reuters21578.load(tmp_path, min_examples=3)
  (folder / "reut2-005.sgm.gz").unlink()
  with pytest.raises(FileNotFoundError, match=r"reuters21578/reut2-005.sgm.gz does not"):
    reuters21578.load(tmp_path, min_examples=3)


# ----- episodes and the model -----

def test_text_episodes_keep_token_ids_and_classes(tmp_path):
  write_clinc(tmp_path, queries=6)
  splits = clinc150.load(tmp_path, max_len=40)  # Long enough to tell texts apart.
  owner = {row.tobytes(): c for c, tokens in enumerate(splits.train.tokens) for row in tokens}
  sampler = episodic.sampler(splits.train.tokens, ways=5, shots=2, queries=3, seed=0)
  batch = sampler.batch(4, 3)
  assert batch.support_x.dtype == batch.query_x.dtype == np.int32
  assert batch.support_x.shape == (3, 10, 40) and batch.query_x.shape == (3, 15, 40)
  for t in range(3):
    support = [owner[r.tobytes()] for r in batch.support_x[t]]
    query = [owner[r.tobytes()] for r in batch.query_x[t]]
    label_class = dict(zip(batch.support_y[t].tolist(), support, strict=True))
    assert len(set(label_class.values())) == 5
    assert [label_class[y] for y in batch.query_y[t].tolist()] == query
  np.testing.assert_array_equal(sampler.batch(4, 3).query_x, batch.query_x)


@pytest.mark.parametrize("num_classes", [0, 5])
def test_transformer_encoder_shapes_and_padding(num_classes):
  config = ml_collections.ConfigDict(dict(name="transformer_encoder", dim=16, depth=1,
                                          num_heads=2, num_classes=num_classes,
                                          norm="none"))
  model = models.build(config, (1, 12))
  params, state = model.init(jax.random.key(0))
  assert ("head" in params) == bool(num_classes)
  ids, _ = TOKENIZER.encode_batch(["hello there", "book a flight"], max_length=12)
  longer = np.concatenate([ids, np.full((2, 4), TOKENIZER.pad_id, np.int32)], axis=1)
  out, _ = model.apply(params, state, jnp.asarray(ids), train=False)
  assert out.shape == (2, num_classes or 16)
  # Padding is masked out: more of it, or float ids, change nothing.
  out_longer, _ = model.apply(params, state, jnp.asarray(longer), train=False)
  out_float, _ = model.apply(params, state, jnp.asarray(ids, jnp.float32), train=False)
  np.testing.assert_allclose(out_longer, out, atol=1e-5)
  np.testing.assert_allclose(out_float, out, atol=1e-6)


# ----- configs and the experiment -----

def test_configs_parse_and_name_what_they_reproduce():
  assert base.parse("trec,5w5s,smoke") == ("trec", 5, 5, True)
  assert base.parse(None) == ("clinc150", 5, 1, False)
  with pytest.raises(ValueError, match=r"Bad config argument 'imdb,5w1s'"):
    base.parse("imdb,5w1s")
  for module, head in ((protonet, True), (r2d2, True), (maml, False), (anil, False)):
    config = module.get_config("fewrel,5w5s,smoke")
    assert config.model.num_classes == (0 if head else 5)
    assert config.data.dataset == "fewrel" and config.eval.shots == 5
    reproduces = module.REPRODUCES
    assert set(reproduces) == {"paper", "table", "metric", "expected", "main"}
    assert reproduces["main"] == "experiments.fewshot_text.main"
    for arg in reproduces["expected"]:
      module.get_config(arg)
  assert anil.get_config("5w1s").method.name == "anil"


def run(config, workdir, env, *flags):
  return subprocess.run(
      [sys.executable, "-m", "experiments.fewshot_text.main",
       f"--config=experiments/fewshot_text/configs/{config}", f"--workdir={workdir}",
       *flags], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


BPE_300 = ("--config.tokenizer.name=bpe", "--config.tokenizer.vocab_size=300")


# protonet runs with a BPE tokenizer, maml with the default bytes.
@pytest.mark.parametrize("name", ["protonet", "maml"])
def test_smoke_run_per_method_family(name, tmp_path, data_dir, user_env, monkeypatch):
  env = {**user_env, "METALM_DATA_DIR": data_dir}
  config = f"{name}.py:clinc150,5w1s,smoke"
  result = run(config, tmp_path, env, *(BPE_300 if name == "protonet" else ()))
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["method"] == name and results["dataset"] == "clinc150"
  assert results["step"] == 3 and results["classes"] == {"train": 75, "val": 30,
                                                         "test": 45}
  assert 0.0 <= results["accuracy"] <= 100.0 and results["ci95"] > 0.0
  assert set(results["eval_classes"]).isdisjoint(clinc150.load(data_dir).train.names)
  with open(tmp_path / "evaluations.jsonl") as f:  # Meta-val at eval.every, then test.
    rows = [json.loads(line) for line in f]
  assert [(r["step"], r["split"]) for r in rows] == [(2, "val"), (3, "test")]
  assert rows[-1]["accuracy"] == results["accuracy"] and rows[-1]["ci95"] == results["ci95"]
  for name_ in ("metrics.jsonl", "learning_curves.png", "accuracy.png", "compute.json",
                "tokenizer.json"):
    assert os.path.getsize(tmp_path / name_) > 0, name_
  assert os.listdir(tmp_path / "tensorboard")
  saved = tokenizers.load(str(tmp_path / "tokenizer.json"))
  assert results["vocab_size"] == saved.vocab_size
  if name == "maml":  # Bytes; a run without tokenizer.json (older runs) loads as bytes.
    assert saved == TOKENIZER
    os.remove(tmp_path / "tokenizer.json")
    assert adapt.load(str(tmp_path), input_shape=(32,)).tokenizer == TOKENIZER
    return
  # BPE: 300 ids (fewer only if training ran out of pairs), and the model has as many.
  assert 261 < saved.vocab_size <= 300 and saved.merges
  trained = adapt.load(str(tmp_path), input_shape=(32,))
  assert trained.tokenizer == saved
  assert trained.meta_params["embed"]["embedding"].shape[0] == saved.vocab_size
  # Any N, own raw sentences (encoded with the run's tokenizer), string labels.
  support = ["play some jazz", "put on a song", "is it going to rain",
             "weather tomorrow", "call mom", "dial my brother"]
  ids = adapt.encode(trained, support)
  np.testing.assert_array_equal(ids, text_fewshot.encode(support, saved, 32))
  assert (ids[:, 0] != saved.pad_id).all() and ids.max() >= 261  # Merged tokens.
  labels, probabilities = adapt.adapt_and_predict(
      trained, support, np.repeat(["music", "weather", "call"], 2), support[:2])
  assert probabilities.shape == (2, 3) and set(labels) <= {"music", "weather", "call"}
  # A resumed run reads tokenizer.json back (the same code path as main) and never
  # retrains; a different vocab_size stops the run, naming the file and the fix.
  monkeypatch.setattr(tokenizers, "train_bpe", lambda *a: pytest.fail("retrained"))
  resumed = protonet.get_config("clinc150,5w1s,smoke")
  resumed.tokenizer.update(name="bpe", vocab_size=300)
  assert fewshot_text_main.load_data(resumed, str(tmp_path))[0] == saved
  result = run(config, tmp_path, env, BPE_300[0], "--config.tokenizer.vocab_size=400")
  assert result.returncode != 0
  assert (f"{tmp_path}/tokenizer.json holds the tokenizer this run was started with"
          in result.stderr), result.stderr[-3000:]
  assert "--config.tokenizer.vocab_size=300" in result.stderr


def test_bpe_is_trained_on_meta_train_texts_only(tmp_path, monkeypatch):
  write_clinc(tmp_path, queries=4)
  seen = []
  train_bpe = tokenizers.train_bpe

  def recording(texts, vocab_size):
    seen.extend(texts)
    return train_bpe(seen, vocab_size)

  monkeypatch.setattr(tokenizers, "train_bpe", recording)
  config = protonet.get_config("clinc150,5w1s,smoke")
  config.data.data_dir = str(tmp_path)
  config.tokenizer.update(name="bpe", vocab_size=300)
  tokenizer, splits = fewshot_text_main.load_data(config, str(tmp_path / "run"))
  assert sorted(seen) == sorted(t for texts in splits.train.texts for t in texts)
  held_out = {t for split in (splits.val, splits.test) for texts in split.texts
              for t in texts}
  assert held_out and held_out.isdisjoint(seen)
  # No token spells a held-out-only word ("work", "travel", ...: domain names).
  train_text = " ".join(seen)
  assert all(piece.decode() in train_text for piece in tokenizer.token_bytes()[261:])
  # The splits are encoded with the trained tokenizer, and saved beside the run.
  assert splits.test.tokens[0][0].max() >= 261
  assert tokenizers.load(str(tmp_path / "run" / "tokenizer.json")) == tokenizer


def test_tokenizer_config_is_checked(tmp_path):
  config = protonet.get_config("clinc150,5w1s,smoke")
  assert config.tokenizer.to_dict() == {"name": "byte", "vocab_size": 0}
  config.tokenizer.name = "sentencepiece"
  with pytest.raises(ValueError, match="known names: byte, bpe"):
    fewshot_text_main.load_data(config, str(tmp_path))
  config.tokenizer.update(name="bpe", vocab_size=100)
  with pytest.raises(ValueError, match="too small for 'bpe'"):
    fewshot_text_main.load_data(config, str(tmp_path))
