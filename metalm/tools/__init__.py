"""Analysis tools for any ``ModelFns`` model: explanations, robustness, compression,
distillation, domain adaptation and compute accounting.

They take plain functions (``fn(x) -> logits``, or pytrees of parameters), so they apply
equally to a trained model and to task parameters after few-shot adaptation.
"""
