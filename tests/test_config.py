"""Config mistakes fail with messages that name them."""

import pytest

from experiments.sinusoid.configs import maml as maml_config
from metalm import meta
from metalm.train import config_check, optim

FREE = ("model", "inner_optimizer", "outer_optimizer")


def test_reference_config_passes():
  for arg in (None, "smoke", "fomaml", "smoke,fomaml"):
    config_check.check_fields(maml_config.get_config(arg), maml_config.get_config(), free=FREE)


def test_unknown_field_is_named_with_a_suggestion():
  config = maml_config.get_config("smoke")
  config.unlock()
  config.inner_step = 5
  config.eval.num_taks = 3
  with pytest.raises(ValueError) as e:
    config_check.check_fields(config, maml_config.get_config(), free=FREE)
  assert "unknown field config.inner_step (did you mean config.inner_steps?)" in str(e.value)
  assert "unknown field config.eval.num_taks (did you mean config.eval.num_tasks?)" in str(
      e.value)


def test_missing_field_is_named():
  config = maml_config.get_config("smoke")
  del config["meta_batch_size"]
  with pytest.raises(ValueError, match=r"missing field config\.meta_batch_size"):
    config_check.check_fields(config, maml_config.get_config(), free=FREE)


def test_unknown_method_and_optimizer_are_named():
  with pytest.raises(ValueError, match=r"Unknown meta-learner 'mamll'\. Did you mean 'maml'"):
    meta.get("mamll")
  config = maml_config.get_config("smoke")
  config.outer_optimizer.name = "adamm"
  with pytest.raises(ValueError, match=r"config\.outer_optimizer\.name 'adamm'"):
    optim.build(config.outer_optimizer, "config.outer_optimizer")
  config = maml_config.get_config("smoke")
  config.inner_optimizer.lr = 0.1
  with pytest.raises(ValueError, match=r"\['lr'\] in config\.inner_optimizer"):
    optim.build(config.inner_optimizer, "config.inner_optimizer")


def test_unknown_config_argument_is_named():
  with pytest.raises(ValueError, match=r"\['smoek'\]"):
    maml_config.get_config("smoek")
