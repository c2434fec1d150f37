"""Transparent huge pages for XLA:CPU's buffers (Linux with glibc >= 2.35).

Why: XLA:CPU takes every call's temporary buffers (427 MB for the CPU model's
train step at 8 x 96^2) from malloc, which maps them fresh and unmaps them when
the call returns. Each step then page-faults its whole temporary arena again,
4 KB at a time (about 110,000 faults per step), and the memory-bound half of
the step (BatchNorm, activations, layout copies) runs on pages the TLB has
never seen. glibc can advise those mappings as transparent huge pages
(`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`): about 500 faults of 2 MB pages per
step, and the CPU model's train step drops from 0.29 to 0.19 s on the machine
of experiments/README.md ("Performance"; 17-25 % at the CPU configs' crops,
22-32 % for the paper model, no gain measured at 8 x 256^2). Nothing that is
computed changes.

glibc reads its tunables once, when the process starts, so setting the
variable from Python is too late. `reexec_with_hugepages()` therefore
re-executes the current command line once, with the tunable added, before jax
allocates anything; the entry points (`cosnet_jax.main`, `evaluate`,
`predict`, the benchmarks) call it first thing under `__main__`. It does
nothing when:

* `COSNET_HUGEPAGES=0` is set (the switch to turn it off);
* the C library is not glibc >= 2.35 (macOS, musl), or the kernel has
  transparent huge pages off (`never`) or not at all;
* `GLIBC_TUNABLES` already names `glibc.malloc.hugetlb` (any value: a user's
  own choice is kept).

From the Python API (a notebook, `evaluation.inference.Segmenter`) nothing
re-executes; start the interpreter with the variable set to get the same
speed: `GLIBC_TUNABLES=glibc.malloc.hugetlb=1 jupyter lab`.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Mapping, Optional, Sequence, Tuple

ENV_SWITCH = 'COSNET_HUGEPAGES'
TUNABLE = 'glibc.malloc.hugetlb'
THP_SYSFS = '/sys/kernel/mm/transparent_hugepage/enabled'
MIN_GLIBC = (2, 35)  # the first glibc with the malloc.hugetlb tunable


def glibc_version() -> Optional[Tuple[int, int]]:
  """(major, minor) of the running glibc, or None for another C library."""
  try:
    text = os.confstr('CS_GNU_LIBC_VERSION') or ''
  except (ValueError, OSError, AttributeError):
    return None
  m = re.fullmatch(r'glibc (\d+)\.(\d+).*', text.strip())
  return (int(m.group(1)), int(m.group(2))) if m else None


def thp_mode(path: str = THP_SYSFS) -> Optional[str]:
  """The kernel's transparent-huge-page mode ('always', 'madvise', 'never')."""
  try:
    with open(path) as f:
      m = re.search(r'\[(\w+)\]', f.read())
  except OSError:
    return None
  return m.group(1) if m else None


def _tunable_value(environ: Mapping[str, str]) -> Optional[str]:
  """The value GLIBC_TUNABLES gives glibc.malloc.hugetlb, or None if unset."""
  for entry in environ.get('GLIBC_TUNABLES', '').split(':'):
    name, _, value = entry.partition('=')
    if name == TUNABLE:
      return value.strip()
  return None


def tunables_with_hugepages(environ: Mapping[str, str],
                            glibc: Optional[Tuple[int, int]],
                            thp: Optional[str]) -> Optional[str]:
  """The GLIBC_TUNABLES value to re-execute with, or None to leave it as is.

  A pure function of its arguments (tested): `environ` is the process
  environment, `glibc` the `glibc_version()`, `thp` the `thp_mode()`.
  """
  if environ.get(ENV_SWITCH, '1').strip().lower() in ('0', 'false', 'no', 'off'):
    return None
  if glibc is None or glibc < MIN_GLIBC or thp not in ('always', 'madvise'):
    return None
  if _tunable_value(environ) is not None:
    return None
  entries = [e for e in environ.get('GLIBC_TUNABLES', '').split(':') if e]
  return ':'.join(entries + [f'{TUNABLE}=1'])


def active(environ: Mapping[str, str] = os.environ) -> bool:
  """Whether this process was started with glibc's huge-page tunable on."""
  return _tunable_value(environ) not in (None, '', '0')


def in_effect(environ: Mapping[str, str] = os.environ) -> bool:
  """Whether a cosnet_jax entry point started from `environ` runs on huge
  pages: already active, or `reexec_with_hugepages()` would turn them on."""
  return active(environ) or tunables_with_hugepages(
      environ, glibc_version(), thp_mode()) is not None


def reexec_with_hugepages(argv: Optional[Sequence[str]] = None) -> None:
  """Re-executes this process with glibc's huge pages on, where that applies.

  Returns (doing nothing) where it does not apply; otherwise does not return.
  `argv` defaults to the interpreter's own command line (`sys.orig_argv`), so
  `python -m cosnet_jax.main --config ...` runs again exactly as typed, with
  the same working directory, in the same process id (so a cluster launcher
  or `jax.distributed` sees no difference).
  """
  new = tunables_with_hugepages(os.environ, glibc_version(), thp_mode())
  if new is None:
    return
  argv = list(argv if argv is not None else getattr(sys, 'orig_argv', []))
  if not argv:
    return
  env = dict(os.environ, GLIBC_TUNABLES=new)
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execve(sys.executable, argv, env)
  except OSError as e:  # e.g. a sandbox without exec: run on without it
    print(f'cosnet_jax: could not re-execute with {TUNABLE}=1 ({e}); '
          'running without transparent huge pages', file=sys.stderr)
