"""Where compilation is configured: XLA options per backend, and the disk cache.

Compiler options (`config.platform.xla_options`, 'auto' = on for the CPU
backend only; the same results either way):
* train steps keep YNNPACK's dots and reductions but not its convolutions
  (its kernel gradients are slow on XLA:CPU); eval-mode passes keep only its
  dots (its reduction fusions were ~40 % of a batch-1 forward);
* variable initialisation compiles with LLVM optimisation off (its ~200
  RNG draws take minutes to optimise and run once).
Measurements: experiments/README.md, "Performance".

The persistent compilation cache: a program XLA compiled before (same
computation, shapes, options and jax version) is read from disk instead of
compiled again (each seed, a resumed run, evaluate after training). Folder:
`--compilation_cache DIR`, else $COSNET_COMPILATION_CACHE, else
$XDG_CACHE_HOME/cosnet_jax/xla (~/.cache/...); an empty value turns it off.
"""
from __future__ import annotations

import os
import pathlib
from typing import Optional

import jax

from cosnet_jax import config as config_lib
from cosnet_jax.errors import ConfigError

MODES = ('train', 'infer')
CPU_COMPILER_OPTIONS = {
    'train': {'xla_cpu_experimental_ynn_fusion_type':
              'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'},
    'infer': {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'},
}
CPU_INIT_COMPILER_OPTIONS = {'xla_backend_optimization_level': 0}

CACHE_ENV = 'COSNET_COMPILATION_CACHE'


def compiler_options(platform_cfg, backend: str, mode: str = 'train'
                     ) -> Optional[dict[str, str]]:
  """`compiler_options` for jax.jit of a step on `backend` (None: XLA's defaults).

  mode: 'train' (steps that take gradients) or 'infer' (eval-mode forward passes).
  platform_cfg: `config.platform` (None: every choice 'auto').
  """
  if mode not in MODES:
    raise ValueError(f'compiler_options: mode={mode!r}, expected one of {MODES}')
  if platform_cfg is None:
    platform_cfg = config_lib.platform_config()
  if platform_cfg.xla_options not in ('auto', 'off'):
    raise ConfigError(f'config.platform.xla_options={platform_cfg.xla_options!r}: expected '
                      "'auto' or 'off'")
  if backend != 'cpu' or platform_cfg.xla_options == 'off':
    return None
  return dict(CPU_COMPILER_OPTIONS[mode])


def init_compiler_options(backend: str) -> Optional[dict]:
  """Compiler options for variable initialisation (CPU_INIT_COMPILER_OPTIONS on CPU)."""
  return dict(CPU_INIT_COMPILER_OPTIONS) if backend == 'cpu' else None


def cache_root() -> pathlib.Path:
  """$XDG_CACHE_HOME/cosnet_jax, else ~/.cache/cosnet_jax: the package's caches."""
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
  return pathlib.Path(base).expanduser() / 'cosnet_jax'


def default_cache_dir() -> str:
  return os.environ.get(CACHE_ENV) or str(cache_root() / 'xla')


def enable_cache(path: str | None) -> str | None:
  """Turns the disk cache on in `path` (None: default_cache_dir(); '' = off).

  Returns the folder, or None when off or not writable (runs without it).
  """
  path = default_cache_dir() if path is None else path
  if not path:
    return None
  folder = pathlib.Path(path).expanduser()
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  jax.config.update('jax_compilation_cache_dir', str(folder))
  # Programs that compile in under a second are not worth a disk entry.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  return str(folder)
