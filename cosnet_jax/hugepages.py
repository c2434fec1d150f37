"""glibc huge pages for XLA:CPU's buffers: the training command's one restart.

On Linux with glibc >= 2.35 and transparent huge pages on, `reexec` starts
the training command once more with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`,
which puts XLA:CPU's per-call buffers on transparent huge pages (a faster CPU
train step: experiments/README.md, "Performance"). glibc reads the tunable
only at process start, hence the restart; it is logged in one line and
`--nohugepages` turns it off.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from typing import Mapping, Optional, Sequence

HUGEPAGES_TUNABLE = 'glibc.malloc.hugetlb'
THP_SYSFS = '/sys/kernel/mm/transparent_hugepage/enabled'
MIN_GLIBC = (2, 35)  # the first glibc with the malloc.hugetlb tunable
# jax plugins of accelerator backends: with one installed the process may not
# run on the CPU, where the huge pages were measured.
_ACCELERATOR_PLUGINS = ('jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm60_plugin',
                        'jax_rocm7_plugin', 'libtpu')


def glibc_version() -> Optional[tuple[int, int]]:
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
  for entry in environ.get('GLIBC_TUNABLES', '').split(':'):
    name, _, value = entry.partition('=')
    if name == HUGEPAGES_TUNABLE:
      return value.strip()
  return None


def _cpu_backend_expected(environ: Mapping[str, str]) -> bool:
  platforms = environ.get('JAX_PLATFORMS', '')
  if platforms:
    return platforms.split(',')[0].strip() == 'cpu'
  return not any(importlib.util.find_spec(p) is not None for p in _ACCELERATOR_PLUGINS)


def tunables(environ: Mapping[str, str], glibc: Optional[tuple[int, int]],
                       thp: Optional[str], cpu_backend: bool = True) -> Optional[str]:
  """The GLIBC_TUNABLES value to re-execute with, or None to leave it as is.

  None when: not the CPU backend; not glibc >= 2.35; transparent huge pages
  off or absent; or GLIBC_TUNABLES already names the tunable (a user's own
  choice is kept). A pure function of its arguments.
  """
  if not cpu_backend or glibc is None or glibc < MIN_GLIBC or thp not in ('always', 'madvise'):
    return None
  if _tunable_value(environ) is not None:
    return None
  entries = [e for e in environ.get('GLIBC_TUNABLES', '').split(':') if e]
  return ':'.join(entries + [f'{HUGEPAGES_TUNABLE}=1'])


def active(environ: Mapping[str, str] = os.environ) -> bool:
  """Whether this process was started with glibc's huge-page tunable on."""
  return _tunable_value(environ) not in (None, '', '0')


def reexec(argv: Optional[Sequence[str]] = None) -> None:
  """Re-executes this command with glibc's huge pages on, where that applies.

  Call before jax is imported. Returns (doing nothing) where it does not
  apply; otherwise logs one line to stderr and does not return. `argv`
  defaults to the interpreter's own command line (`sys.orig_argv`): the same
  command, working directory and process id (a cluster launcher sees no
  difference).
  """
  new = tunables(os.environ, glibc_version(), thp_mode(),
                           _cpu_backend_expected(os.environ))
  argv = list(argv if argv is not None else getattr(sys, 'orig_argv', []))
  if new is None or not argv:
    return
  print(f'cosnet_jax: restarting with GLIBC_TUNABLES={new} (XLA:CPU buffers on '
        'transparent huge pages, a faster CPU step; --nohugepages turns this off)',
        file=sys.stderr, flush=True)
  sys.stdout.flush()
  try:
    os.execve(sys.executable, argv, dict(os.environ, GLIBC_TUNABLES=new))
  except OSError as e:  # a sandbox without exec: say so and go on without
    print(f'cosnet_jax: could not restart ({e}); running without huge pages',
          file=sys.stderr, flush=True)
