"""Multitask benchmarks by name: ``setup(config) -> common.Benchmark``."""

from experiments.multitask.benchmarks import conll, dense, multi_mnist, qm9, sentences

BENCHMARKS = {
    "multi_mnist": multi_mnist.setup,
    "conll2000": conll.setup,
    "sentences": sentences.setup,
    "nyuv2": dense.setup,
    "cityscapes": dense.setup,
    "qm9": qm9.setup,
}
