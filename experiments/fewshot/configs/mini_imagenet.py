r"""mini-ImageNet 5-way 1-shot and 5-shot rows for every method (Ravi & Larochelle split).

Takes the method's Omniglot config for the same setting and moves it to mini-ImageNet
(84x84x3 images; Conv-4 with 32 filters for the gradient-based learners as in Finn et al.
2017, 64 for the metric and closed-form heads as in Snell et al. 2017), with the
per-method changes the papers state. Needs the data under
``$METALM_DATA_DIR/mini_imagenet`` (see ``metalm.data.mini_imagenet``).

  python -m experiments.fewshot.main \
      --config=experiments/fewshot/configs/mini_imagenet.py:maml,5w1s \
      --workdir=runs/mini_imagenet_maml_5w1s

Arguments: a method config name (``maml``, ``fomaml``, ``meta_sgd``, ``anil``, ``boil``,
``cavia``, ``maml_plus_plus``, ``imaml``, ``protonet``, ``r2d2``, ``metaoptnet``), then
``5w1s`` or ``5w5s``, optionally ``smoke``.

Papers' 5-way accuracy (1-shot / 5-shot, %), the figure each row reproduces:
"""

import importlib

from experiments.fewshot.configs import base

PAPER = {
    "maml": ("Finn et al. 2017, Table 2", 48.70, 63.11),
    "fomaml": ("Finn et al. 2017, Table 2", 48.07, 63.15),
    "meta_sgd": ("Li et al. 2017, Table 2", 50.47, 64.03),
    "anil": ("Raghu et al. 2020, Table 2", 46.7, 61.5),
    "boil": ("Oh et al. 2021, Table 2", 49.61, 66.45),
    "cavia": ("Zintgraf et al. 2019, Table 3 (512 filters)", 51.82, 65.85),
    "maml_plus_plus": ("Antoniou et al. 2019, Table 2", 52.15, 68.32),
    "imaml": ("Rajeswaran et al. 2019, Table 3 (1-shot only)", 49.30, None),
    "protonet": ("Snell et al. 2017, Table 2", 49.42, 68.20),
    "r2d2": ("Bertinetto et al. 2019, Table 1", 51.5, 68.8),
    "metaoptnet": ("Lee et al. 2019, Table 1 (ResNet-12)", 62.64, 78.63),
}
__doc__ += "\n".join(f"  {m}: {s}: {a} / {b}" for m, (s, a, b) in PAPER.items())

REPRODUCES = dict(
    paper="each method's own paper, named with each figure",
    table="the paper's mini-ImageNet 5-way table (Ravi & Larochelle split), named with each figure",
    metric="accuracy (%)",
    expected={
        f"{method},5w{shots}s": (f"{figure} ({source})" if figure is not None
                                 else f"not reported in the paper ({source})")
        for method, (source, *figures) in PAPER.items()
        for shots, figure in zip((1, 5), figures, strict=True)
    },
    main="experiments.fewshot.main",
)

# Finn et al. 2017, Sec. 5.2: 5 inner steps at 0.01, 10 at test, meta-batch 4 / 2.
MAML_FAMILY = ("maml", "fomaml", "anil")


def get_config(arg: str | None = None):
  parts = [p for p in (arg or "").split(",") if p]
  methods = [p for p in parts if p in PAPER]
  if len(methods) != 1:
    raise ValueError(f"Bad config argument {arg!r}: name one method of {sorted(PAPER)}, "
                     "then 5w1s or 5w5s, optionally smoke.")
  method = methods[0]
  rest = ",".join(p for p in parts if p != method)
  ways, shots, smoke = base.parse(rest)
  if ways != 5:
    raise ValueError(f"mini-ImageNet rows are 5-way; got {ways}-way in {arg!r}.")
  config = importlib.import_module(f"experiments.fewshot.configs.{method}").get_config(
      f"5w{shots}s")
  config.data.dataset = "mini_imagenet"
  config.data.split = "ravi"
  if config.model.name == "conv4":
    config.model.filters = 64 if config.model.num_classes == 0 else 32
  if method in MAML_FAMILY:
    config.method.inner_steps = 5
    config.method.inner_optimizer.learning_rate = 0.01
    config.meta_batch_size = 4 if shots == 1 else 2
  if method == "protonet":  # Snell et al. 2017, Sec. 3.2: 30-way 1-shot, 20-way 5-shot.
    config.data.ways = 30 if shots == 1 else 20
  config.eval.ways, config.eval.shots = 5, shots
  return base.shrink(config) if smoke else config
