"""JAX's persistent compilation cache for the command-line programs.

Compiling the train step costs far more than a step on CPU (cosnet_small: about
45 s against 1-2 s per step; the paper model on a GPU: 73 s), and every run of
a config compiles the same programs again: each seed of an experiment, a
resumed run, `cosnet_jax.evaluate` after training. With the cache on, a program
XLA has compiled before (same computation, shapes, compiler options and jax
version) is read from disk instead (measured: 53 s -> 5 s for the tiny test
model's train step).

The folder: `--compilation_cache DIR` of main / evaluate / predict, else the
environment variable COSNET_COMPILATION_CACHE, else ~/.cache/cosnet_jax/xla.
An empty value turns the cache off.
"""
from __future__ import annotations

import os
import pathlib

ENV = 'COSNET_COMPILATION_CACHE'
DEFAULT = '~/.cache/cosnet_jax/xla'


def default_dir() -> str:
  return os.environ.get(ENV, DEFAULT)


def enable(path: str | None) -> str | None:
  """Turns the cache on in `path` (None: default_dir(); '' = off). Returns the folder."""
  import jax  # pylint: disable=g-import-not-at-top
  path = default_dir() if path is None else path
  if not path:
    return None
  folder = pathlib.Path(path).expanduser()
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None       # read-only home etc.: run without the cache
  jax.config.update('jax_compilation_cache_dir', str(folder))
  # Programs that compile in under a second are not worth a disk entry.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  return str(folder)
