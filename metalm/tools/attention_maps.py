"""Per-layer attention maps of the ``metalm.lm`` transformers (full softmax attention).

``SelfAttention`` sows its softmax weights into the ``"intermediates"`` collection when
that collection is mutable; this module runs a forward pass that collects them. Works
for ``Encoder``, ``DecoderLM`` and ``models.text_encoder.TextEncoder``.

Attention weights as explanations: Vaswani et al., 2017, arXiv:1706.03762; Clark et al.,
2019, arXiv:1906.04341 ("What Does BERT Look At?").
"""

from typing import Any

import flax.linen as nn
import jax

NAME = "attention_probs"


def _collect(tree, found: list) -> None:
  """Appends every sown ``NAME`` value in call order (dicts keep insertion order)."""
  for name, value in tree.items():
    if name == NAME:
      found.extend(value)
    elif hasattr(value, "items"):
      _collect(value, found)


def attention_maps(module: nn.Module, params: Any, tokens_BxL: jax.Array,
                   **kwargs) -> tuple[jax.Array, ...]:
  """Attention probabilities of every layer, ``[B, H, L, S]`` each, in layer order.

  Rows sum to 1 over the keys; padding keys (``pad_id``) and, when causal, later keys
  get weight 0. Only ``attention="full"`` layers sow; other mechanisms give no maps.

  Args:
    module: a Linen transformer whose attention layers are ``transformer.SelfAttention``.
    params: its ``params`` collection (e.g. from ``ModelFns.init``).
    tokens_BxL: token ids.
    **kwargs: further arguments of the module's ``__call__`` (``train=False`` default).
  """
  kwargs.setdefault("train", False)
  _, variables = module.apply({"params": params}, tokens_BxL, mutable=["intermediates"],
                              **kwargs)
  found: list = []
  _collect(variables.get("intermediates", {}), found)
  return tuple(found)
