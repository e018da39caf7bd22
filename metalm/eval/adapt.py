"""Adapt a meta-trained model to your own support set and predict, outside training.

  trained = adapt.load("runs/omniglot_protonet_5w1s", input_shape=(28, 28, 1))
  labels, probabilities = adapt.adapt_and_predict(trained, support_x, support_y, query_x)

``support_y`` may hold any labels (ints or strings); predictions use the same labels.
Inputs follow the training pipeline's convention (e.g. Omniglot: float32 in [0, 1],
28x28x1). For text models the run's tokenizer (``<workdir>/tokenizer.json``, the byte
tokenizer when absent) is ``trained.tokenizer``; ``encode(trained, texts)`` gives the
token ids training used, and raw strings may be passed as ``support_x`` / ``query_x``:

  trained = adapt.load("runs/clinc150_protonet_5w1s", input_shape=(64,))
  labels, _ = adapt.adapt_and_predict(trained, ["play jazz", "rain today?"],
                                      ["music", "weather"], ["will it snow"])
"""

import os
from typing import Any, NamedTuple, Sequence

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from metalm import losses, meta, models, types, validate
from metalm.data import text_fewshot
from metalm.lm import tokenizers
from metalm.meta import base
from metalm.train import checkpoint, optim


class Trained(NamedTuple):
  """A meta-trained learner restored from a run directory."""

  config: ml_collections.ConfigDict
  model: Any  # ModelFns
  meta_params: Any
  model_state: Any
  input_shape: tuple[int, ...]
  # The run's tokenizer (text models): its tokenizer.json, else the byte tokenizer.
  tokenizer: tokenizers.Tokenizer = tokenizers.byte_tokenizer()


def load(workdir: str, *, input_shape: Sequence[int]) -> Trained:
  """Restores the latest checkpoint of a few-shot run (``experiments/fewshot``).

  Args:
    workdir: the run's ``--workdir``; its ``tokenizer.json``, if any, becomes
      ``tokenizer`` (else the byte tokenizer).
    input_shape: the shape of one input example, e.g. ``(28, 28, 1)``; for text, the
      run's ``config.data.max_len`` as ``(max_len,)``.
  """
  manager = ocp.CheckpointManager(f"{workdir}/checkpoints")
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"No checkpoint under {workdir}/checkpoints; train first, "
                            "or pass the --workdir of a finished run.")
  saved = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
  manager.close()
  config = ml_collections.ConfigDict(saved.config)
  input_shape = tuple(input_shape)
  path = os.path.join(workdir, tokenizers.FILENAME)
  tokenizer = tokenizers.load(path) if os.path.exists(path) else tokenizers.byte_tokenizer()
  vocab_size = config.model.get("vocab_size")
  if config.model.name in _TOKEN_MODELS and vocab_size not in (None,
                                                               tokenizer.vocab_size):
    raise ValueError(f"The model of {workdir} has {vocab_size} token ids but "
                     f"{path if os.path.exists(path) else 'the byte tokenizer'} has "
                     f"{tokenizer.vocab_size}: the run's tokenizer.json is missing or "
                     "was replaced.")
  model = models.build(config.model, (1,) + input_shape)
  learner = _learner(config, model, config.data.ways)
  outer_tx = optim.build(config.outer_optimizer, "config.outer_optimizer")
  abstract = jax.eval_shape(
      lambda: base.init_train_state(learner, outer_tx, jax.random.key(0)))
  ckpt = checkpoint.Checkpointer(workdir, config)
  state = ckpt.restore(abstract)
  ckpt.close()
  return Trained(config, model, state.params, state.model_state, input_shape, tokenizer)


def encode(trained: Trained, texts: Sequence[str]) -> np.ndarray:
  """``[len(texts), L]`` int32 token ids of raw ``texts``, as training encoded them.

  The run's tokenizer, truncated and right-padded to ``L = input_shape[0]`` (the run's
  ``config.data.max_len``) like ``metalm.data.text_fewshot.encode``.
  """
  if trained.config.model.name not in _TOKEN_MODELS or len(trained.input_shape) != 1:
    raise ValueError(f"encode is for text models with input_shape (max_len,); this run's "
                     f"model is {trained.config.model.name!r} with input_shape "
                     f"{trained.input_shape}.")
  if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
    raise ValueError("texts must be a sequence of strings.")
  return text_fewshot.encode(list(texts), trained.tokenizer, trained.input_shape[0])


def adapt_and_predict(trained: Trained, support_x, support_y, query_x, *,
                      inner_steps: int | None = None, seed: int = 0):
  """Adapts to ``(support_x, support_y)`` and classifies ``query_x``.

  Args:
    trained: from ``load``.
    support_x: ``[S, *input_shape]`` examples (text models: token ids, or ``S``
      strings, encoded with ``encode``).
    support_y: ``[S]`` labels of any hashable kind; N = number of distinct labels.
    query_x: ``[Q, *input_shape]`` examples (or ``Q`` strings, as ``support_x``).
    inner_steps: test-time inner steps for gradient-based learners (default: the
      run's ``config.eval.inner_steps``).
    seed: seeds the dropout keys, if the model has dropout.

  Returns:
    ``(labels [Q], probabilities [Q, N])``; column j of ``probabilities`` is the
    j-th label of ``np.unique(support_y)``.
  """
  dtype = _input_dtype(trained)
  if dtype == np.int32:
    support_x, query_x = (encode(trained, x) if _is_texts(x) else x
                          for x in (support_x, query_x))
  support_x = validate.numeric_array(support_x, "support_x", dtype=dtype)
  query_x = validate.numeric_array(query_x, "query_x", dtype=dtype)
  support_y = np.asarray(support_y)
  if support_y.ndim != 1 or support_y.size == 0:
    raise ValueError(f"support_y must be a non-empty 1-D array of labels; got shape "
                     f"{support_y.shape}.")
  if query_x.shape[:1] == (0,):
    raise ValueError("query_x is empty along axis 0: give at least one query example.")
  classes, support_ids = np.unique(support_y, return_inverse=True)
  _check_shapes(trained.input_shape, support_x, support_ids, query_x)
  config = trained.config
  if "inner_steps" in config.method:
    inner_steps = config.eval.inner_steps if inner_steps is None else inner_steps
    overrides = {"inner_steps": inner_steps}
  else:
    overrides = {}
  learner = _learner(config, trained.model, len(classes), **overrides)
  support = types.Batch(support_x, support_ids.astype(np.int32))
  logits, _ = jax.jit(learner.predict)(
      trained.meta_params, trained.model_state, support, query_x, jax.random.key(seed))
  probabilities = np.asarray(jax.nn.softmax(logits, axis=-1))
  return classes[probabilities.argmax(-1)], probabilities


# Models whose inputs are token ids rather than real-valued features.
_TOKEN_MODELS = ("transformer_encoder",)


def _input_dtype(trained: Trained):
  return np.int32 if trained.config.model.name in _TOKEN_MODELS else np.float32


def _is_texts(x) -> bool:
  return (isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.dtype.kind in
          "UO")) and len(x) > 0 and all(isinstance(t, str) for t in x)


def _learner(config, model, num_ways, **overrides):
  width = config.model.get("num_classes", 0)
  if width and width != num_ways:
    raise ValueError(
        f"This {config.method.name} model was meta-trained for {width}-way tasks (its "
        f"head has {width} outputs); the support set has {num_ways} classes. Give "
        f"{width} classes, or use a metric / closed-form head (protonet, r2d2, "
        "metaoptnet_svm), which takes any number.")
  return meta.build(config.method, model, loss_fn=losses.cross_entropy,
                    num_ways=num_ways, **overrides)


def _check_shapes(input_shape, support_x, support_ids, query_x):
  for name, x in (("support_x", support_x), ("query_x", query_x)):
    if x.ndim != len(input_shape) + 1 or x.shape[1:] != input_shape:
      raise ValueError(f"{name} has shape {x.shape}; expected (N, *{input_shape}): "
                       f"axes 1 onward must equal input_shape {input_shape}.")
  if support_ids.shape[0] != support_x.shape[0]:
    raise ValueError(f"support_y has {support_ids.shape[0]} labels along axis 0 but "
                     f"support_x has {support_x.shape[0]} examples.")
