"""metalm: gradient-based meta-learning and multitask training in JAX."""

__version__ = "0.1.0"
