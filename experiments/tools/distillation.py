"""A small student trained on labels vs. distilled from a larger teacher (Hinton et al. 2015)."""

import os

import jax

from experiments.tools import classifier
from metalm.eval import plots
from metalm.tools import distillation


def run(config, workdir, train, test):
  cfg, base = config.distillation, config.classifier
  train = (train[0][:cfg.num_train], train[1][:cfg.num_train])
  keys = jax.random.split(jax.random.key(config.seed + 2), 4)
  fit = lambda loss, params, key, name: classifier.fit(
      loss, params, train, steps=cfg.steps, batch_size=base.batch_size,
      learning_rate=base.learning_rate, key=key, log=(workdir, name))
  ce = lambda p, x, y, k: classifier.cross_entropy(p, x, y)
  hidden = lambda h: "-".join(map(str, h))
  teacher = classifier.cached(
      workdir, f"teacher_{hidden(cfg.teacher_hidden)}_{cfg.steps}steps",
      lambda: fit(ce, classifier.init(cfg.teacher_hidden, keys[0]), keys[1], "teacher"))
  student_init = classifier.init(cfg.student_hidden, keys[2])

  def kd(p, x, y, k):
    teacher_logits = classifier.logits(teacher, x)
    return distillation.kd_loss(classifier.logits(p, x), teacher_logits, y,
                                temperature=cfg.temperature, alpha=cfg.alpha)[0]

  students = {"student": fit(ce, student_init, keys[3], "student"),
              "student_kd": fit(kd, student_init, keys[3], "student_kd")}
  acc = {name: classifier.accuracy(lambda z, p=p: classifier.logits(p, z), *test)
         for name, p in {"teacher": teacher, **students}.items()}
  n = len(test[0])
  png = plots.accuracy_with_ci(
      os.path.join(workdir, "distillation.png"),
      {name: (100 * a, 100 * classifier.ci95(a, n)) for name, a in acc.items()},
      title=f"MNIST: teacher {hidden(cfg.teacher_hidden)}, student "
            f"{hidden(cfg.student_hidden)}, T={cfg.temperature:g}", xlabel="model")
  return {"num_test": n, "num_train": len(train[0]), "steps": cfg.steps,
          "teacher_hidden": list(cfg.teacher_hidden),
          "student_hidden": list(cfg.student_hidden), "temperature": cfg.temperature,
          "alpha": cfg.alpha, "accuracy": acc, "pngs": [os.path.basename(png)]}
