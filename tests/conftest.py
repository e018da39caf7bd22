"""Test-wide JAX settings: 8 CPU devices, no implicit rank promotion.

Under ``CI`` the property tests draw the same examples on every run (hypothesis
``derandomize``), so a red CI always points at a reproducible example; locally they keep
exploring new ones.

Strict dtype promotion is the ``strict_promotion`` fixture rather than global: optax's
Adam computes ``decay ** count`` with an int32 count, which strict promotion rejects.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in flags:
  os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=8".strip()

import hypothesis  # noqa: E402
import jax  # noqa: E402  (after XLA_FLAGS)
import pytest  # noqa: E402

hypothesis.settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
  hypothesis.settings.load_profile("ci")

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def strict_promotion():
  with jax.numpy_dtype_promotion("strict"):
    yield


@pytest.fixture
def x64():
  """Runs the test with 64-bit floats (finite-difference checks)."""
  with jax.enable_x64(True):
    yield


@pytest.fixture
def user_env():
  """The environment of a user's shell: without the 8 forced CPU devices."""
  return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}


@pytest.fixture
def data_dir():
  """The local data directory; skips the test when METALM_DATA_DIR is unset."""
  path = os.environ.get("METALM_DATA_DIR")
  if not path:
    pytest.skip("METALM_DATA_DIR is unset: point it at the datasets directory.")
  return path
