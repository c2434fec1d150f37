"""How the model's layers are computed: the plain layers, or CPU-friendly forms.

A `Formulation` never changes what a model computes (the same functions to
float32 rounding, tests/test_platform.py); on XLA:CPU the CPU forms run
faster (experiments/README.md, "Performance"). `config.platform` chooses each
one ('auto': the CPU form on the CPU backend, the plain layer elsewhere):

* `grouped_conv`: 'slices' runs a grouped conv as one dense conv per group
  (XLA:CPU's `feature_group_count` convs and their gradients are slow);
  'native' is `lax.conv(feature_group_count=g)`.
* `dense_group_width`: with 'slices', a grouped conv with at most this many
  input channels per group runs as ONE dense conv with the block-diagonal
  kernel instead.
* `fused_projection`: training-mode projection heads as one matmul with BN
  statistics from a Gram matrix (models/heads.py).
* `max_pool`: 'strided' computes the stem's 3x3/2 max pool as nine strided
  maxima with select-and-scatter's gradient (models/pooling.py);
  'reduce_window' is `nn.max_pool`.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from cosnet_jax import config as config_lib
from cosnet_jax.errors import ConfigError

GROUPED_CONV = ('auto', 'native', 'slices')
ON_OFF = ('auto', 'on', 'off')
MAX_POOL = ('auto', 'strided', 'reduce_window')


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


def choice(platform_cfg, key: str, allowed: Sequence[str]) -> str:
  """`config.platform.<key>`, checked against `allowed` (ConfigError naming it)."""
  value = platform_cfg[key]
  if value not in allowed:
    raise ConfigError(f'config.platform.{key}={value!r}: expected one of {list(allowed)}')
  return value


def formulation(platform_cfg, backend: str) -> Formulation:
  """The Formulation for `backend` ('cpu', 'gpu', 'tpu') under `config.platform`
  (None: every choice 'auto')."""
  if platform_cfg is None:
    platform_cfg = config_lib.platform_config()
  base = CPU if backend == 'cpu' else REFERENCE
  grouped = choice(platform_cfg, 'grouped_conv', GROUPED_CONV)
  fused = choice(platform_cfg, 'fused_projection', ON_OFF)
  pool = choice(platform_cfg, 'max_pool', MAX_POOL)
  width = int(platform_cfg.dense_group_width)
  if width < -1:
    raise ConfigError(f'config.platform.dense_group_width={width}: expected -1 (auto) or >= 0')
  return Formulation(
      grouped_conv=base.grouped_conv if grouped == 'auto' else grouped,
      dense_group_width=base.dense_group_width if width == -1 else width,
      fused_projection=base.fused_projection if fused == 'auto' else fused == 'on',
      strided_max_pool=base.strided_max_pool if pool == 'auto' else pool == 'strided')
