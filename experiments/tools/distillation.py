"""A small student trained on labels vs. distilled from a larger teacher (Hinton et al. 2015).

Multi-teacher: one teacher per dataset (MNIST, Fashion-MNIST), distilled into one
multitask student (a shared MLP trunk with a 10-way head slice per task) with
``distillation.multi_teacher_kd_loss`` (Clark et al. 2019, arXiv:1907.04829), against the
same student trained on the labels alone for the same steps.
"""

import os

import jax
import numpy as np
import optax
from absl import logging

from experiments.tools import classifier
from metalm.data import mnist
from metalm.eval import plots
from metalm.tools import distillation

NUM_CLASSES = 10


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
  results = {"num_test": n, "num_train": len(train[0]), "steps": cfg.steps,
             "teacher_hidden": list(cfg.teacher_hidden),
             "student_hidden": list(cfg.student_hidden), "temperature": cfg.temperature,
             "alpha": cfg.alpha, "accuracy": acc, "pngs": [os.path.basename(png)]}
  results["multi_teacher"] = multi_teacher(config, workdir)
  results["pngs"] += results["multi_teacher"]["pngs"]
  return results


def load_dataset(name: str, split: str, limit: int):
  arrays = mnist.load(name, split)
  x = np.asarray(arrays.images[:limit], np.float32).reshape(-1, classifier.NUM_FEATURES)
  return x / 255.0, np.asarray(arrays.labels[:limit], np.int32)


def multi_teacher(config, workdir):
  """Per-task teachers -> one multitask student, vs. the student on labels alone."""
  cfg, base = config.distillation.multi, config.classifier
  try:
    data = {task: (load_dataset(task, "train", cfg.num_train),
                   load_dataset(task, "test", config.data.num_test)) for task in cfg.tasks}
  except FileNotFoundError as error:
    logging.warning("Skipping the multi-teacher demo: %s", error)
    return {"skipped": str(error), "pngs": []}
  tasks = tuple(cfg.tasks)
  keys = jax.random.split(jax.random.key(config.seed + 6), len(tasks) + 2)
  fit = lambda loss, params, train, key, name: classifier.fit(
      loss, params, train, steps=cfg.steps, batch_size=base.batch_size,
      learning_rate=base.learning_rate, key=key, log=(workdir, name))
  ce = lambda p, x, y, k: classifier.cross_entropy(p, x, y)
  hidden = "-".join(map(str, cfg.teacher_hidden))
  teachers = {task: classifier.cached(
      workdir, f"teacher_{task}_{hidden}_{cfg.steps}steps_n{cfg.num_train}",
      lambda task=task, key=key: fit(ce, classifier.init(cfg.teacher_hidden, key),
                                     data[task][0], jax.random.fold_in(key, 1),
                                     f"teacher_{task}"))
              for task, key in zip(tasks, keys, strict=False)}

  # Example i of the paired set is example i of every task: x [N, T*784], y [N, T].
  n = min(len(data[task][0][0]) for task in tasks)
  paired = (np.concatenate([data[task][0][0][:n] for task in tasks], 1),
            np.stack([data[task][0][1][:n] for task in tasks], 1))
  split = lambda x: {task: x[:, i * classifier.NUM_FEATURES:(i + 1) * classifier.NUM_FEATURES]
                     for i, task in enumerate(tasks)}
  student_logits = lambda p, xs: {task: task_logits(p, xs[task], i)
                                  for i, task in enumerate(tasks)}
  teacher_fns = {task: (lambda z, t=teachers[task]: classifier.logits(t, z)) for task in tasks}
  labels = lambda y: {task: y[:, i] for i, task in enumerate(tasks)}

  def kd(p, x, y, k):
    xs = split(x)  # Each teacher sees its own task's images (``teacher_logits`` shares one x).
    teacher_out = {task: jax.lax.stop_gradient(teacher_fns[task](xs[task])) for task in tasks}
    return distillation.multi_teacher_kd_loss(
        student_logits(p, xs), teacher_out, labels(y),
        temperature=cfg.temperature, alpha=cfg.alpha)[0]

  def labels_only(p, x, y, k):
    xs = split(x)
    out, y = student_logits(p, xs), labels(y)
    return sum(optax.softmax_cross_entropy_with_integer_labels(out[task], y[task]).mean()
               for task in tasks)

  student_init = classifier.init(cfg.student_hidden, keys[-2],
                                 num_outputs=NUM_CLASSES * len(tasks))
  students = {"student_multi_kd": fit(kd, student_init, paired, keys[-1], "student_multi_kd"),
              "student_multi_labels": fit(labels_only, student_init, paired, keys[-1],
                                          "student_multi_labels")}
  test = {task: data[task][1] for task in tasks}
  acc = {"teachers": {task: classifier.accuracy(teacher_fns[task], *test[task])
                      for task in tasks}}
  for name, p in students.items():
    acc[name] = {task: classifier.accuracy(lambda z, p=p, i=i: task_logits(p, z, i),
                                           *test[task]) for i, task in enumerate(tasks)}
  num_test = len(test[tasks[0]][0])
  png = plots.accuracy_with_ci(
      os.path.join(workdir, "multi_teacher.png"),
      {f"{model}\n{task}": (100 * a, 100 * classifier.ci95(a, num_test))
       for model, per_task in acc.items() for task, a in per_task.items()},
      title=f"teachers {hidden} per task -> one student "
            f"{'-'.join(map(str, cfg.student_hidden))} (T={cfg.temperature:g})",
      xlabel="model / task")
  return {"tasks": list(tasks), "num_train": n, "num_test": num_test, "steps": cfg.steps,
          "teacher_hidden": list(cfg.teacher_hidden), "student_hidden": list(cfg.student_hidden),
          "temperature": cfg.temperature, "alpha": cfg.alpha, "accuracy": acc,
          "pngs": [os.path.basename(png)]}


def task_logits(params, x, task_index: int):
  """The multitask student's logits of one task: its slice of the shared head."""
  out = classifier.logits(params, x)
  return out[:, task_index * NUM_CLASSES:(task_index + 1) * NUM_CLASSES]
