"""Shows the analysis tools (``metalm.tools``) on MNIST from ``$METALM_DATA_DIR``.

  python -m experiments.tools.main --config=experiments/tools/configs/mnist.py:explain \
      --workdir=runs/tools_mnist_explain

The classifier (and each study's extra models) is cached in --workdir as ``.npz``, so a
re-run only redoes the analysis. Each study writes ``results.json`` (``all`` writes one
entry per study) and its PNGs into --workdir.
"""

import json
import os
import time

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.tools import (
    classifier,
    compression,
    distillation,
    domain,
    domain_meta,
    explain,
    robustness,
)
from experiments.tools.configs import mnist as reference_config
from metalm.train import config_check

_DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "configs", "mnist.py")
CONFIG = config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Config file.")
WORKDIR = flags.DEFINE_string("workdir", "runs/tools_mnist", "Run directory.")


def run_study(study, config, workdir, params, train, test):
  if study == "explain":
    return explain.run(config, workdir, params, test)
  if study == "robustness":
    return robustness.run(config, workdir, params, train, test)
  if study == "compression":
    return compression.run(config, workdir, params, train, test)
  if study == "distillation":
    return distillation.run(config, workdir, train, test)
  if study == "domain_meta":
    return domain_meta.run(config, workdir)
  return domain.run(config, workdir, train, config.data.num_test)


def main(argv):
  del argv
  config, workdir = CONFIG.value, WORKDIR.value
  config_check.check_fields(config, reference_config.get_config())
  os.makedirs(workdir, exist_ok=True)
  train = classifier.load_split("train")
  test = classifier.load_split("test", limit=config.data.num_test)
  start = time.time()
  params = classifier.classifier(config, workdir, train)
  accuracy = classifier.accuracy(lambda z: classifier.logits(params, z), *test)
  logging.info("Classifier test accuracy %.4f on %d images.", accuracy, len(test[0]))
  results = {"study": config.study, "smoke": config.smoke,
             "classifier": {"hidden": list(config.classifier.hidden),
                            "steps": config.classifier.steps, "test_accuracy": accuracy,
                            "num_test": len(test[0])}}
  studies = reference_config.STUDIES if config.study == "all" else (config.study,)
  for study in studies:
    study_start = time.time()
    results[study] = run_study(study, config, workdir, params, train, test)
    results[study]["seconds"] = round(time.time() - study_start, 1)
    logging.info("%s: %s", study, json.dumps(results[study]))
  results["seconds"] = round(time.time() - start, 1)
  path = os.path.join(workdir, "results.json")
  with open(path, "w") as f:
    json.dump({**results, "config": json.loads(config.to_json())}, f, indent=2)
  logging.info("Wrote %s.", path)


if __name__ == "__main__":
  app.run(main)
