"""Test setup: 4 simulated CPU devices so the data-parallel path always runs."""
import os

# Must be set before jax is first imported by any test module.
_flag = "--xla_force_host_platform_device_count=4"
if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


import pytest  # noqa: E402  (after the XLA flags above)


@pytest.fixture(scope='session')
def tfds_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


@pytest.fixture(scope='session')
def tiny_run(tfds_dir, tmp_path_factory):
  """One real training run of the tiny config (both stages + final eval),
  shared by the training, evaluation and prediction tests."""
  from cosnet_jax.train import loop  # pylint: disable=g-import-not-at-top
  from tiny_config import tiny_config  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp('tiny_run')
  config = tiny_config(tfds_dir)
  config.optimizer.learning_rate = 3e-3
  result = loop.train_and_evaluate(config, str(workdir))
  return workdir, result
