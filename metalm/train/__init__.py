"""Training infrastructure: optimizers, config checks, checkpoints, metrics, loop."""
