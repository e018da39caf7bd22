"""Clean and FGSM / PGD robust accuracy, of the classifier and of an adversarially trained one."""

import os

import jax
import jax.numpy as jnp

from experiments.tools import classifier
from metalm.eval import plots
from metalm.tools import robustness


def attacks(cfg):
  """``{name: attack}``: FGSM and PGD at each L-inf and L2 budget of ``cfg``."""
  out = {}
  for norm, epsilons in (("linf", cfg.linf_epsilons), ("l2", cfg.l2_epsilons)):
    for eps in epsilons:
      out[f"fgsm_{norm}_{eps:g}"] = robustness.fgsm(eps, norm=norm)
      out[f"pgd{cfg.pgd_steps}_{norm}_{eps:g}"] = robustness.pgd(eps, norm=norm,
                                                                 steps=cfg.pgd_steps)
  return out


def evaluate(params, x, y, cfg, key, batch_size: int = 1000):
  """``{"clean_accuracy", "<attack>": robust accuracy}`` over ``(x, y)``."""
  fn = lambda z: classifier.logits(params, z)
  out = {}
  for name, attack in attacks(cfg).items():
    run = jax.jit(lambda xb, yb, k, attack=attack: robustness.robust_accuracy(fn, xb, yb,
                                                                              attack, k))
    clean = robust = 0.0
    for start in range(0, len(x), batch_size):
      xb, yb = jnp.asarray(x[start:start + batch_size]), jnp.asarray(y[start:start + batch_size])
      r = run(xb, yb, jax.random.fold_in(key, start))
      clean += float(r["clean_accuracy"]) * len(xb)
      robust += float(r["robust_accuracy"]) * len(xb)
    out["clean_accuracy"] = round(clean / len(x), 6)
    out[name] = round(robust / len(x), 6)
  return out


def adversarial_classifier(config, workdir, train):
  """The classifier trained on PGD L-inf examples through ``adversarial_loss`` (Madry et al.)."""
  cfg, base = config.robustness, config.classifier
  attack = robustness.pgd(cfg.adv_epsilon, steps=cfg.adv_pgd_steps)
  loss = robustness.adversarial_loss(classifier.cross_entropy, attack)

  def fit():
    init_key, fit_key = jax.random.split(jax.random.key(config.seed + 1))
    params = classifier.init(base.hidden, init_key)
    return classifier.fit(lambda p, x, y, k: loss(p, x, y, key=k), params, train,
                          steps=cfg.adv_steps, batch_size=base.batch_size,
                          learning_rate=base.learning_rate, key=fit_key,
                          log=(workdir, "adversarial"))

  name = f"adversarial_eps{cfg.adv_epsilon:g}_pgd{cfg.adv_pgd_steps}_{cfg.adv_steps}steps"
  return classifier.cached(workdir, name, fit)


def run(config, workdir, params, train, test):
  cfg = config.robustness
  x, y = test[0][:cfg.num_test], test[1][:cfg.num_test]
  key = jax.random.key(config.seed)
  results = {"num_test": len(x), "pgd_steps": cfg.pgd_steps,
             "standard": evaluate(params, x, y, cfg, key)}
  adv_params = adversarial_classifier(config, workdir, train)
  results["adversarial_training"] = {
      "attack": f"pgd{cfg.adv_pgd_steps}_linf_{cfg.adv_epsilon:g}", "steps": cfg.adv_steps,
      **evaluate(adv_params, x, y, cfg, key)}
  entries = {}
  for model in ("standard", "adversarial_training"):
    for name, acc in results[model].items():
      if isinstance(acc, float) and (name == "clean_accuracy" or name.startswith("pgd")):
        label = f"{'std' if model == 'standard' else 'adv'}\n{name.replace('_', ' ')}"
        entries[label] = (100 * acc, 100 * classifier.ci95(acc, len(x)))
  png = plots.accuracy_with_ci(os.path.join(workdir, "robustness.png"), entries,
                               title="clean and PGD robust accuracy, 95% CI",
                               xlabel="model / attack")
  results["pngs"] = [os.path.basename(png)]
  return results
