"""Masked-LM pretraining of the text encoder and grafting it into a meta-learner."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from metalm import losses, meta, models
from metalm.lm import pretrain, tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = tokenizers.byte_tokenizer().vocab_size


def encoder_config(num_classes=0):
  return ml_collections.ConfigDict(dict(name="transformer_encoder", num_classes=num_classes,
                                        dim=16, depth=1, num_heads=2, norm="none"))


def corpus(rows=64, length=12):
  """Byte rows of a repeating pattern: easy to predict from context."""
  text = "abcabcabcabc xyzxyz " * 4
  tokens = np.array([[ord(text[(r + i) % len(text)]) for i in range(length)]
                     for r in range(rows)], np.int32)
  tokens[::3, -3:] = tokenizers.Tokenizer.pad_id
  return tokens


def test_masked_lm_encoder_has_the_text_encoders_shapes():
  module = pretrain.MaskedLM(VOCAB, dim=16, depth=1, num_heads=2)
  mlm = module.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
  model = models.build(encoder_config(), (1, 8))
  params, _ = model.init(jax.random.key(0))
  for key in pretrain.ENCODER_KEYS:
    assert jax.tree.map(jnp.shape, mlm[key]) == jax.tree.map(jnp.shape, params[key])


def test_pretraining_lowers_the_masked_loss_and_is_deterministic():
  module = pretrain.MaskedLM(VOCAB, dim=16, depth=1, num_heads=2)
  kwargs = dict(module=module, steps=60, batch_size=16, learning_rate=3e-3, mask_rate=0.3)
  encoder, history = pretrain.pretrain_mlm(corpus(), **kwargs)
  assert set(encoder) == set(pretrain.ENCODER_KEYS)
  assert np.mean(history[-10:]) < 0.7 * np.mean(history[:10]), history
  again, _ = pretrain.pretrain_mlm(corpus(), **kwargs)
  for a, b in zip(jax.tree.leaves(encoder), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(a, b)


def test_masking_touches_only_real_tokens():
  tokens = jnp.asarray(corpus())
  inputs, chosen = pretrain.mask_tokens(jax.random.key(1), tokens, rate=0.5,
                                        pad_id=tokenizers.Tokenizer.pad_id,
                                        mask_id=tokenizers.Tokenizer.mask_id)
  assert not bool(jnp.any(chosen & (tokens == tokenizers.Tokenizer.pad_id)))
  np.testing.assert_array_equal(inputs == tokenizers.Tokenizer.mask_id, chosen)
  assert 0.4 < float(chosen.sum() / (tokens != tokenizers.Tokenizer.pad_id).sum()) < 0.6


@pytest.mark.parametrize("method,head", [("protonet", True), ("maml", False),
                                         ("r2d2", True)])
def test_graft_puts_the_encoder_into_any_learners_parameters(method, head):
  model = models.build(encoder_config(0 if head else 5), (1, 8))
  options = {"name": method, **({"inner_steps": 1} if method == "maml" else {})}
  learner = meta.build(ml_collections.ConfigDict(options), model,
                       loss_fn=losses.cross_entropy, num_ways=5)
  params, _ = learner.init(jax.random.key(0))
  module = pretrain.MaskedLM(VOCAB, dim=16, depth=1, num_heads=2)
  encoder = {k: v for k, v in module.init(jax.random.key(3), jnp.zeros((1, 8), jnp.int32))[
      "params"].items()}
  grafted = pretrain.graft(params, encoder)
  assert jax.tree.structure(grafted) == jax.tree.structure(params)
  flat_new = dict(jax.tree_util.tree_flatten_with_path(grafted)[0])
  flat_old = dict(jax.tree_util.tree_flatten_with_path(params)[0])
  changed = {jax.tree_util.keystr(p) for p in flat_new
             if not np.array_equal(flat_new[p], flat_old[p])}
  assert changed and all("'embed'" in p or "'trunk'" in p for p in changed)
  with pytest.raises(ValueError, match="does not fit"):
    pretrain.graft(params, {**encoder, "embed": {"embedding": jnp.zeros((3, 16))}})
  with pytest.raises(ValueError, match="not a transformer_encoder"):
    pretrain.graft({"w": jnp.zeros(2)}, encoder)


def test_fewshot_text_smoke_pretrains_once(tmp_path, data_dir, user_env):
  run = lambda *extra: subprocess.run(
      [sys.executable, "-m", "experiments.fewshot_text.main",
       "--config=experiments/fewshot_text/configs/protonet.py:clinc150,5w1s,smoke",
       f"--workdir={tmp_path}", "--config.pretrain.steps=5", *extra],
      cwd=ROOT, capture_output=True, text=True, timeout=600,
      env={**user_env, "METALM_DATA_DIR": data_dir})
  first = run("--config.num_steps=2")
  assert first.returncode == 0, first.stderr[-3000:]
  assert "Masked-LM pretraining on the meta-train texts" in first.stderr
  with open(tmp_path / "results.json") as f:
    pretrained = json.load(f)["pretrain"]
  assert pretrained["steps"] == 5 and len(pretrained["losses"]) == 2
  assert os.path.exists(tmp_path / "pretrained_encoder.npz")
  resumed = run()
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed from" in resumed.stderr
  assert "Masked-LM pretraining" not in resumed.stderr  # Read back, not trained again.
