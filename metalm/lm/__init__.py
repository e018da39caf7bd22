"""Language-model core: tokenizers, attention variants and transformer models."""
