"""Platform choices in one place: layer formulations, XLA options, huge pages.

Nothing here changes what a model computes (the same functions to float32
rounding, tested in tests/test_platform.py); each choice makes XLA:CPU faster
where it was measured (experiments/README.md, "Performance") and is on by
default only on the CPU backend. `config.platform` switches each one:

* `grouped_conv`: 'slices' runs a grouped conv as one dense conv per group
  (XLA:CPU runs `feature_group_count` convs and their gradients 10-100x
  slower than dense ones); 'native' is `lax.conv(feature_group_count=g)`.
* `dense_group_width`: with 'slices', a grouped conv with at most this many
  input channels per group runs as ONE dense conv with the block-diagonal
  kernel instead (4 -> 8 channels per group at 8 x 96^2: 35 ms as slices,
  20 ms dense, forward + backward).
* `fused_projection`: training-mode projection heads as one matmul with BN
  statistics from a Gram matrix (models/heads.py; 2-4 % of the CPU step).
* `max_pool`: 'strided' computes the stem's 3x3/2 max pool as nine strided
  maxima with select-and-scatter's gradient (models/pooling.py; 8.5 -> 2.4 ms
  at [8, 48, 48, 32]); 'reduce_window' is `nn.max_pool`.
* `xla_options`: keep convolutions on XLA's Eigen kernels rather than
  YNNPACK, whose kernel gradients are slow (CPU train step 0.77x the time),
  and in eval-mode passes also reductions (paper-model inference at batch 1:
  0.78 -> 0.55 s).
* glibc huge pages (CPU, Linux, glibc >= 2.35): `hugepages_reexec` starts the
  command once more with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, which puts
  XLA:CPU's per-call buffers on transparent huge pages (train step 17-25 %
  faster). glibc reads the tunable only at process start, hence the re-exec;
  it is logged in one line and `--nohugepages` turns it off.

Every field defaults to 'auto' (-1 for the width): the CPU choice on the CPU
backend, the plain layers elsewhere.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import sys
from typing import Mapping, Optional, Sequence

import ml_collections

GROUPED_CONV = ('auto', 'native', 'slices')
ON_OFF = ('auto', 'on', 'off')
MAX_POOL = ('auto', 'strided', 'reduce_window')
MODES = ('train', 'infer')


@dataclasses.dataclass(frozen=True)
class Formulation:
  """How the model's layers are computed (hashable: a flax module attribute).

  The default is the model as it is defined (plain flax / lax layers): what
  FLOP counts use, and what runs on accelerators.
  """
  grouped_conv: str = 'native'   # 'native' | 'slices'
  dense_group_width: int = 0     # with 'slices': <= this many input channels per group -> one dense conv
  fused_projection: bool = False
  strided_max_pool: bool = False


REFERENCE = Formulation()
CPU = Formulation(grouped_conv='slices', dense_group_width=4, fused_projection=True,
                  strided_max_pool=True)

# YNNPACK fusion kinds XLA:CPU may use: train steps keep its dots and
# reductions (faster in the batch-8 step: paired MFU 26-28 % against 21-23 %
# without), eval-mode passes only its dots (its reduction fusions took about
# 40 % of a batch-1 forward). Neither gives it convolutions.
CPU_COMPILER_OPTIONS = {
    'train': {'xla_cpu_experimental_ynn_fusion_type':
              'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'},
    'infer': {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'},
}
# Variable initialisation compiles ~200 RNG draws; LLVM optimisation of them
# takes minutes on CPU and the init runs once (same values either way).
CPU_INIT_COMPILER_OPTIONS = {'xla_backend_optimization_level': 0}


def default_platform_config() -> ml_collections.ConfigDict:
  """`config.platform`: every choice 'auto' (CPU formulations on CPU only)."""
  c = ml_collections.ConfigDict()
  c.grouped_conv = 'auto'        # 'auto' | 'native' | 'slices'
  c.dense_group_width = -1       # -1 auto (CPU 4, else 0); 0 = never dense
  c.fused_projection = 'auto'    # 'auto' | 'on' | 'off'
  c.max_pool = 'auto'            # 'auto' | 'strided' | 'reduce_window'
  c.xla_options = 'auto'         # 'auto' (CPU: Eigen convolutions) | 'off'
  return c


def _choice(cfg, key: str, allowed: Sequence[str]) -> str:
  from cosnet_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  value = cfg.get(key, 'auto') if cfg is not None else 'auto'
  if value not in allowed:
    raise ConfigError(f'config.platform.{key}={value!r}: expected one of {list(allowed)}')
  return value


def formulation(platform_cfg, backend: str) -> Formulation:
  """The Formulation for `backend` ('cpu', 'gpu', 'tpu') under `config.platform`."""
  from cosnet_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  base = CPU if backend == 'cpu' else REFERENCE
  grouped = _choice(platform_cfg, 'grouped_conv', GROUPED_CONV)
  fused = _choice(platform_cfg, 'fused_projection', ON_OFF)
  pool = _choice(platform_cfg, 'max_pool', MAX_POOL)
  width = int(platform_cfg.get('dense_group_width', -1)) if platform_cfg is not None else -1
  if width < -1:
    raise ConfigError(f'config.platform.dense_group_width={width}: expected -1 (auto) or >= 0')
  return Formulation(
      grouped_conv=base.grouped_conv if grouped == 'auto' else grouped,
      dense_group_width=base.dense_group_width if width == -1 else width,
      fused_projection=base.fused_projection if fused == 'auto' else fused == 'on',
      strided_max_pool=base.strided_max_pool if pool == 'auto' else pool == 'strided')


def compiler_options(platform_cfg, backend: str, mode: str = 'train'
                     ) -> Optional[dict[str, str]]:
  """`compiler_options` for jax.jit of a step on `backend` (None: XLA's defaults).

  mode: 'train' (steps that take gradients) or 'infer' (eval-mode forward passes).
  """
  if mode not in MODES:
    raise ValueError(f'compiler_options: mode={mode!r}, expected one of {MODES}')
  choice = _choice(platform_cfg, 'xla_options', ('auto', 'off'))
  if backend != 'cpu' or choice == 'off':
    return None
  return dict(CPU_COMPILER_OPTIONS[mode])


def init_compiler_options(backend: str) -> Optional[dict]:
  """Compiler options for variable initialisation (see CPU_INIT_COMPILER_OPTIONS)."""
  return dict(CPU_INIT_COMPILER_OPTIONS) if backend == 'cpu' else None


# ------------------------------------------------------------- huge pages

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


def hugepages_tunables(environ: Mapping[str, str], glibc: Optional[tuple[int, int]],
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


def hugepages_active(environ: Mapping[str, str] = os.environ) -> bool:
  """Whether this process was started with glibc's huge-page tunable on."""
  return _tunable_value(environ) not in (None, '', '0')


def hugepages_reexec(argv: Optional[Sequence[str]] = None) -> None:
  """Re-executes this command with glibc's huge pages on, where that applies.

  Call before jax is imported. Returns (doing nothing) where it does not
  apply; otherwise logs one line to stderr and does not return. `argv`
  defaults to the interpreter's own command line (`sys.orig_argv`): the same
  command, working directory and process id (a cluster launcher sees no
  difference).
  """
  new = hugepages_tunables(os.environ, glibc_version(), thp_mode(),
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
