"""Config files: the shipped recipes by name, any file by path, and loading them.

The recipes (configs/*.py) are installed as the package `cosnet_jax.configs`
and import their shared pieces from it (`from cosnet_jax.configs import
common`). From a checkout that is not installed, `ensure_configs_package`
registers the checkout's configs/ folder under that name, so a recipe loads
the same either way.
"""
from __future__ import annotations

import importlib.util
import pathlib
import sys

import ml_collections

from cosnet_jax.errors import ConfigError, UserError

PACKAGE = 'cosnet_jax.configs'
REPO_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs'


def ensure_configs_package() -> pathlib.Path:
  """Makes `cosnet_jax.configs` importable; returns its folder."""
  if PACKAGE in sys.modules:
    return pathlib.Path(list(sys.modules[PACKAGE].__path__)[0])
  spec = importlib.util.find_spec(PACKAGE)
  if spec is None:   # a checkout: configs/ beside the package
    spec = importlib.util.spec_from_file_location(
        PACKAGE, REPO_CONFIGS / '__init__.py', submodule_search_locations=[str(REPO_CONFIGS)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
  return pathlib.Path(list(spec.submodule_search_locations)[0])


def configs_dir() -> pathlib.Path:
  """The folder of the shipped recipes."""
  return ensure_configs_package()


def shipped() -> list[str]:
  """Names of the shipped recipes."""
  return sorted(p.stem for p in configs_dir().glob('*.py')
                if p.stem not in ('__init__', 'common'))


def resolve(value: str) -> str:
  """'octa500_3m:cpu' or 'configs/octa500_3m.py:cpu' -> an existing file path[:arg]."""
  ensure_configs_package()   # a file given by path may import the shared pieces
  file, sep, arg = value.partition(':')
  if pathlib.Path(file).is_file():
    return value
  name = pathlib.Path(file).name
  name = name[:-3] if name.endswith('.py') else name
  candidate = configs_dir() / f'{name}.py'
  if candidate.is_file() and name in shipped():
    return f'{candidate}{sep}{arg}'
  raise UserError(f'--config {value!r}: no such file, and no shipped config named '
                  f'{name!r} (shipped: {", ".join(shipped())})')


def load(path: str) -> ml_collections.ConfigDict:
  """Imports a config file ('file.py' or 'file.py:arg') and calls get_config(arg)."""
  ensure_configs_package()
  file, _, arg = str(path).partition(':')
  file = pathlib.Path(file)
  if not file.is_file():
    raise ConfigError(f'config file not found: {file}')
  spec = importlib.util.spec_from_file_location('_cosnet_config', file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()
