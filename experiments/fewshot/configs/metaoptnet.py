r"""MetaOptNet-SVM head on Omniglot (Lee et al. 2019, arXiv:1904.03758).

The paper reports mini-ImageNet, tiered-ImageNet, CIFAR-FS and FC100 (Tables 1-2), not
Omniglot; this config applies its multi-class SVM head (C=0.1) to Conv-4 features on
Omniglot with the other heads' training setup.

  python -m experiments.fewshot.main --config=experiments/fewshot/configs/metaoptnet.py:5w1s \
      --workdir=runs/omniglot_metaoptnet_5w1s
"""

from experiments.fewshot.configs import base

REPRODUCES = dict(
    paper=("Lee et al. 2019, Meta-Learning with Differentiable Convex Optimization "
           "(arXiv:1904.03758)"),
    table="none for Omniglot (Tables 1-2: mini-ImageNet, tiered-ImageNet, CIFAR-FS, FC100)",
    metric="accuracy (%), 95% CI",
    expected={
        "5w1s": "not reported in the paper",
        "5w5s": "not reported in the paper",
        "20w1s": "not reported in the paper",
        "20w5s": "not reported in the paper",
    },
    main="experiments.fewshot.main",
)


def get_config(arg: str | None = None):
  ways, shots, smoke = base.parse(arg)
  config = base.omniglot(ways, shots, method=dict(name="metaoptnet_svm", C=0.1),
                         head=True)
  config.meta_batch_size = 8
  config.num_steps = 20_000
  if smoke:
    config = base.shrink(config)
    config.method.solver_steps = 10
  return config
