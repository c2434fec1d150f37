"""cosnet_jax.hugepages: when the entry points re-execute with glibc's
huge-page tunable, and that the re-executed process really gets huge pages."""
import os
import pathlib
import subprocess
import sys

import pytest

from cosnet_jax import hugepages

ROOT = pathlib.Path(__file__).resolve().parents[1]
GLIBC = (2, 36)


@pytest.mark.parametrize('environ, glibc, thp, expected', [
    ({}, GLIBC, 'madvise', 'glibc.malloc.hugetlb=1'),
    ({}, GLIBC, 'always', 'glibc.malloc.hugetlb=1'),
    # another tunable of the user's is kept, ours appended
    ({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2'}, GLIBC, 'madvise',
     'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1'),
    # the user's own hugetlb choice (even 0) wins: no re-exec, no loop
    ({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'}, GLIBC, 'madvise', None),
    ({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=1'}, GLIBC, 'madvise', None),
    ({'COSNET_HUGEPAGES': '0'}, GLIBC, 'madvise', None),
    ({'COSNET_HUGEPAGES': 'off'}, GLIBC, 'madvise', None),
    ({}, GLIBC, 'never', None),       # THP off in the kernel
    ({}, GLIBC, None, None),          # no THP (or not Linux)
    ({}, (2, 34), 'madvise', None),   # glibc before the tunable
    ({}, None, 'madvise', None),      # musl, macOS
])
def test_tunables_with_hugepages(environ, glibc, thp, expected):
  assert hugepages.tunables_with_hugepages(environ, glibc, thp) == expected


def test_active_and_thp_mode(tmp_path):
  assert hugepages.active({'GLIBC_TUNABLES': 'a=1:glibc.malloc.hugetlb=1'})
  assert not hugepages.active({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'})
  assert not hugepages.active({})
  assert hugepages.in_effect({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=1'})
  assert not hugepages.in_effect({'COSNET_HUGEPAGES': '0'})
  sysfs = tmp_path / 'enabled'
  sysfs.write_text('always [madvise] never\n')
  assert hugepages.thp_mode(str(sysfs)) == 'madvise'
  assert hugepages.thp_mode(str(tmp_path / 'missing')) is None


_CHILD = r'''
import os, sys
sys.path.insert(0, {root!r})
from cosnet_jax import hugepages
print('argv', sys.argv[1:], flush=True)
hugepages.reexec_with_hugepages()
import numpy as np
a = np.ones(256 * 2**20 // 8)          # 256 MB, one malloc'd mapping, touched
huge_kb = 0
with open('/proc/self/smaps_rollup') as f:
  for line in f:
    if line.startswith('AnonHugePages:'):
      huge_kb = int(line.split()[1])
print('tunables', os.environ.get('GLIBC_TUNABLES', ''))
print('huge_mb', huge_kb // 1024, float(a.sum()))
'''


def _run_child(env_extra):
  env = {k: v for k, v in os.environ.items()
         if k not in ('GLIBC_TUNABLES', 'COSNET_HUGEPAGES')}
  env.update(env_extra)
  code = _CHILD.format(root=str(ROOT))
  out = subprocess.run([sys.executable, '-c', code, 'x', '--y=1'], env=env,
                       capture_output=True, text=True, timeout=120, check=True)
  return out.stdout


@pytest.mark.skipif(
    hugepages.glibc_version() is None or hugepages.glibc_version() < hugepages.MIN_GLIBC
    or hugepages.thp_mode() not in ('always', 'madvise')
    or not os.path.exists('/proc/self/smaps_rollup'),
    reason='needs Linux with glibc >= 2.35 and transparent huge pages')
def test_reexec_gives_huge_pages():
  out = _run_child({})
  # re-executed once, with the same arguments, and the tunable set
  assert out.count("argv ['x', '--y=1']") == 2, out
  assert 'tunables glibc.malloc.hugetlb=1' in out
  huge_mb = int(out.split('huge_mb ')[1].split()[0])
  assert huge_mb >= 128, out   # most of the 256 MB array is on 2 MB pages
  assert out.strip().endswith(str(float(256 * 2**20 // 8)))

  off = _run_child({'COSNET_HUGEPAGES': '0'})
  assert off.count('argv') == 1 and 'hugetlb' not in off
