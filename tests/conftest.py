"""Test setup: 4 simulated CPU devices so the data-parallel path always runs."""
import os

# Must be set before jax is first imported by any test module.
# LLVM optimisation level 0: the tests run tiny models for a few steps, so
# compile time is most of their cost (a third less at level 0; the level
# changes code generation, not what the programs compute).
for _flag in ("--xla_force_host_platform_device_count=4",
              "--xla_backend_optimization_level=0"):
  if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


import pathlib  # noqa: E402

import pytest  # noqa: E402  (after the XLA flags above)

from cosnet_jax import compilation, config_files  # noqa: E402
from cosnet_jax.train import loop  # noqa: E402  (imports jax: after the XLA flags)
from tiny_config import tiny_config  # noqa: E402

# The recipes' shared pieces (cosnet_jax.configs) importable from the checkout too.
config_files.ensure_configs_package()


@pytest.fixture(scope='session', autouse=True)
def caches_in_pytest_tmp(tmp_path_factory):
  """Every cache of the test run (decoded data, XLA programs, matplotlib), in
  this process and its subprocesses, under pytest's temporary folder, never
  the user's ~/.cache. One XLA cache for the run: identical programs (the same
  tiny step built by several tests and subprocesses) compile once."""
  root = tmp_path_factory.mktemp('cache')
  os.environ['XDG_CACHE_HOME'] = str(root)
  os.environ['COSNET_COMPILATION_CACHE'] = str(root / 'xla')
  compilation.enable_cache(None)
  yield root


SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def shared_data() -> pathlib.Path:
  """../shared/data (real OCTA data beside the checkout); tests skip where it is absent."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f'shared OCTA data absent ({SHARED_DATA})')
  return SHARED_DATA


@pytest.fixture(scope='session')
def data_cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


@pytest.fixture(scope='session')
def tiny_run(data_cache, tmp_path_factory):
  """One real training run of the tiny config (both stages + final eval),
  shared by the training, evaluation and prediction tests."""
  workdir = tmp_path_factory.mktemp('tiny_run')
  config = tiny_config(data_cache)
  config.optimizer.learning_rate = 3e-3
  result = loop.train_and_evaluate(config, str(workdir))
  return workdir, result
