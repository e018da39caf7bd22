"""Attention maps, saliency before/after adaptation, embedding attacks, adversarial queries."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from metalm import losses, meta, models, types
from metalm.lm import transformer
from metalm.meta import base
from metalm.models import functional, text_encoder
from metalm.tools import attention_maps, explain, robustness

PAD = 0
TEXT = dict(num_classes=3, vocab_size=11, dim=8, depth=2, num_heads=2, mlp_dim=16, pad_id=PAD)


def _tokens():
  tokens_BxL = jax.random.randint(jax.random.key(0), (4, 6), 1, 11)
  return tokens_BxL.at[0, 4:].set(PAD).at[2, 2:].set(PAD)


@functools.cache
def _text_model(depth=TEXT["depth"]):
  fields = {**TEXT, "depth": depth}
  config = ml_collections.ConfigDict({"name": "transformer_encoder", **fields})
  model = models.build(config, (1, 6))
  params, state = jax.jit(model.init)(jax.random.key(1))
  return text_encoder.TextEncoder(**fields), model, params, state


# Attention maps.


def test_text_encoder_maps_are_distributions_that_skip_padding_and_change_nothing():
  module, model, params, state = _text_model()
  assert state == {}  # init sows nothing
  tokens_BxL = _tokens()
  maps = jax.jit(functools.partial(attention_maps.attention_maps, module))(params, tokens_BxL)
  assert len(maps) == TEXT["depth"]
  for map_BxHxLxL in maps:
    assert map_BxHxLxL.shape == (4, TEXT["num_heads"], 6, 6)
    np.testing.assert_allclose(map_BxHxLxL.sum(-1), 1.0, atol=1e-5)
    pad_BxS = tokens_BxL == PAD
    assert float(jnp.max(jnp.where(pad_BxS[:, None, None, :], map_BxHxLxL, 0.0))) == 0.0
  logits, _ = model.apply(params, state, tokens_BxL, train=False)
  sown, _ = module.apply({"params": params}, tokens_BxL, mutable=["intermediates"])
  np.testing.assert_array_equal(logits, sown)


def test_decoder_maps_are_lower_triangular_and_encoder_maps_are_not():
  tokens_BxL = _tokens()
  for module, causal in ((transformer.DecoderLM(11, dim=8, depth=3, num_heads=2), True),
                         (transformer.Encoder(11, 3, dim=8, depth=1, num_heads=2), False)):
    params = module.init(jax.random.key(2), tokens_BxL)["params"]
    maps = jax.jit(functools.partial(attention_maps.attention_maps, module))(params, tokens_BxL)
    assert len(maps) == module.depth
    upper = jnp.triu(jnp.ones((6, 6), bool), k=1)
    above = max(float(jnp.max(jnp.where(upper, m, 0.0))) for m in maps)
    assert (above == 0.0) == causal
    np.testing.assert_allclose(maps[-1].sum(-1), 1.0, atol=1e-5)


def test_one_layer_map_equals_softmax_of_scaled_query_key_products():
  module, _, params, _ = _text_model(depth=1)
  tokens_BxL = _tokens()
  (map_BxHxLxL,) = attention_maps.attention_maps(module, params, tokens_BxL)
  block = params["trunk"]["block_0"]
  h_BxLxD = params["embed"]["embedding"][tokens_BxL]
  x_BxLxD = transformer.nn.LayerNorm().apply({"params": block["attn_norm"]}, h_BxLxD)

  def project(name):
    dense = block["attn"][name]
    y_BxLxHxK = jnp.einsum("bld,dhk->blhk", x_BxLxD, dense["kernel"]) + dense["bias"][None, None]
    return transformer.rotary(y_BxLxHxK, jnp.arange(6))

  scores = jnp.einsum("blhk,bshk->bhls", project("query"), project("key")) / jnp.sqrt(4.0)
  scores = jnp.where((tokens_BxL != PAD)[:, None, None, :], scores, -jnp.inf)
  np.testing.assert_allclose(map_BxHxLxL, jax.nn.softmax(scores, -1), rtol=1e-5, atol=1e-6)


# Saliency before and after adaptation.


def _mlp_maml(inner_steps):
  config = ml_collections.ConfigDict({"name": "mlp", "hidden": (8,), "num_outputs": 3})
  model = models.build(config, (1, 4))
  learner = meta.get("maml")(model, losses.cross_entropy, inner_tx=optax.sgd(0.5),
                             inner_steps=inner_steps)
  return model, learner


def _task():
  kx, kq = jax.random.split(jax.random.key(3))
  support = types.Batch(jax.random.normal(kx, (6, 4)), jnp.arange(6) % 3)
  return support, jax.random.normal(kq, (5, 4)), jnp.array([0, 1, 2, 0, 1])


def test_saliency_before_equals_after_without_inner_steps():
  model, learner = _mlp_maml(0)
  params, state = learner.init(jax.random.key(4))
  support, query_x, target_B = _task()
  before, after = explain.adapted_saliency(learner, model, params, state, support, query_x,
                                           target_B, jax.random.key(5))
  assert before.shape == query_x.shape
  np.testing.assert_allclose(before, after)


def test_saliency_after_adaptation_uses_the_task_parameters():
  model, learner = _mlp_maml(3)
  params, state = learner.init(jax.random.key(4))
  support, query_x, target_B = _task()
  key = jax.random.key(5)
  before, after = explain.adapted_saliency(learner, model, params, state, support, query_x,
                                           target_B, key, method=explain.gradient_x_input)
  assert not np.allclose(before, after, atol=1e-4)
  task_params, _ = learner.adapt(params, state, support, jax.random.split(key)[0])
  by_hand = lambda x: model.apply(task_params, state, x, train=False)[0]
  np.testing.assert_allclose(after, explain.gradient_x_input(by_hand, query_x, target_B),
                             rtol=1e-5, atol=1e-6)
  predicted = lambda x: learner.predict(params, state, support, x, key)[0]
  np.testing.assert_allclose(after, explain.gradient_x_input(predicted, query_x, target_B),
                             rtol=1e-5, atol=1e-6)
  meta_fn = lambda x: model.apply(params, state, x, train=False)[0]
  np.testing.assert_allclose(before, explain.gradient_x_input(meta_fn, query_x, target_B),
                             rtol=1e-5, atol=1e-6)


# Attacks on token embeddings.


def _embedding_fns(module, params):
  embed_fn = lambda tokens_BxL: params["embed"]["embedding"][tokens_BxL]
  logits_fn = lambda e_BxLxD, tokens_BxL: module.apply(
      {"params": params}, tokens_BxL, embeddings_BxLxD=e_BxLxD)
  return embed_fn, logits_fn


def test_embedding_path_reproduces_the_token_path():
  module, model, params, state = _text_model()
  embed_fn, logits_fn = _embedding_fns(module, params)
  tokens_BxL = _tokens()
  np.testing.assert_allclose(logits_fn(embed_fn(tokens_BxL), tokens_BxL),
                             model.apply(params, state, tokens_BxL, train=False)[0],
                             rtol=1e-6, atol=1e-6)


def test_embedding_attack_stays_in_ball_keeps_padding_and_lowers_accuracy():
  module, _, params, _ = _text_model()
  embed_fn, logits_fn = _embedding_fns(module, params)
  tokens_BxL = _tokens()
  clean_BxLxD = embed_fn(tokens_BxL)
  y_B = jnp.argmax(logits_fn(clean_BxLxD, tokens_BxL), -1)  # all clean-correct
  y_B = y_B.at[3].set((y_B[3] + 1) % 3)  # one clean mistake
  for norm, epsilon in (("linf", 0.5), ("l2", 3.0)):
    attack = robustness.pgd(epsilon, norm=norm, steps=3, clip=None)
    out = jax.jit(functools.partial(robustness.embedding_attack, embed_fn, logits_fn,
                                    attack=attack))(tokens_BxL, y_B, key=jax.random.key(6),
                                                    mask_BxL=tokens_BxL != PAD)
    delta_BxLxD = out["embeddings"] - clean_BxLxD
    size_B = (jnp.max(jnp.abs(delta_BxLxD), (1, 2)) if norm == "linf"
              else jnp.sqrt(jnp.sum(delta_BxLxD ** 2, (1, 2))))
    assert float(jnp.max(size_B)) <= epsilon * (1 + 1e-5)
    assert float(jnp.max(size_B)) > 0.0
    pad_BxL = tokens_BxL == PAD
    assert float(jnp.max(jnp.where(pad_BxL[..., None], jnp.abs(delta_BxLxD), 0.0))) == 0.0
    assert float(out["clean_accuracy"]) == 0.75
    assert float(out["robust_accuracy"]) < float(out["clean_accuracy"])


# Adversarial querying.


def _adversarial_setup(epsilon):
  model, learner = _mlp_maml(2)
  attack = robustness.pgd(epsilon, steps=3, random_start=False, clip=None)
  support, query_x, _ = _task()
  task = types.TaskBatch(support.x, support.y, query_x, jnp.arange(5) % 3)
  params, state = learner.init(jax.random.key(7))
  return learner, robustness.adversarial_queries(learner, attack), params, state, task


def _loss_and_grad(learner, params, state, task):
  fn = lambda p: learner.outer_loss(p, state, task, jax.random.key(8))[0]
  return jax.jit(jax.value_and_grad(fn))(params)


def test_adversarial_queries_with_zero_epsilon_is_the_wrapped_learner():
  learner, adversarial, params, state, task = _adversarial_setup(0.0)
  loss, grads = _loss_and_grad(learner, params, state, task)
  adv_loss, adv_grads = _loss_and_grad(adversarial, params, state, task)
  np.testing.assert_allclose(adv_loss, loss, rtol=1e-6)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7),
               adv_grads, grads)


def test_adversarial_queries_raise_the_outer_loss_and_meta_train():
  learner, adversarial, params, state, task = _adversarial_setup(0.3)
  loss, _ = _loss_and_grad(learner, params, state, task)
  adv_loss, adv_grads = _loss_and_grad(adversarial, params, state, task)
  assert float(adv_loss) > float(loss)
  assert np.isfinite(float(optax.tree.norm(adv_grads)))
  tasks = jax.tree.map(lambda x: jnp.stack([x, x]), task)
  tx = optax.sgd(0.1)
  train_state = base.init_train_state(adversarial, tx, jax.random.key(7))
  step = jax.jit(functools.partial(base.meta_step, adversarial, tx))
  new_state, metrics = step(train_state, tasks, jax.random.key(9))
  assert bool(metrics["finite"])
  assert int(new_state.step) == 1
  assert not np.allclose(new_state.params["head"]["kernel"],
                         train_state.params["head"]["kernel"])


def test_text_encoder_map_state_stays_out_of_model_functions():
  _, model, params, state = _text_model()
  assert isinstance(model, functional.ModelFns)
  _, new_state = model.apply(params, state, _tokens(), train=True)
  assert new_state == {}
