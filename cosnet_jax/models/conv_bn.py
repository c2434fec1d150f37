"""Conv and BatchNorm layers with the project's conventions.

All convs keep nn.Conv's variables (`kernel` [k, k, C_in/groups, C_out], `bias`),
whatever computes them: grouped convs run as dense convs on channel slices and
1x1 convs as matmuls, both much faster on XLA:CPU (see the classes).

Convs: NHWC, PyTorch-style symmetric padding k//2 (so that ImageNet weights
line up exactly; flax 'SAME' pads stride-2 convs asymmetrically), He-normal
(fan-out) kernel init as in the ResNet/ResNeSt code, float32 params, compute in
`dtype`. BatchNorm: momentum 0.9 (PyTorch 0.1), eps 1e-5, statistics computed in
float32 and synchronised over `axis_name` when given (cross-replica BN).
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cosnet_jax.models.fast_conv import block_diagonal_kernel

BN_MOMENTUM = 0.9
BN_EPS = 1e-5

he_fan_out = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


# Grouped convs with at most this many input channels per group run as ONE
# dense conv with the equivalent block-diagonal kernel (groups x the
# multiply-adds, most of them on zeros). Why: XLA:CPU runs a 3x3 conv with 4
# input channels far below its speed on wider ones (the split-attention convs
# of the full-resolution decoder blocks, 4 -> 8 channels per group: forward
# + backward of all four groups at 8 x 96^2, 35 ms as slices, 20 ms dense).
# From 8 channels per group up the slices are faster. Same function either
# way (float32 rounding). `reference_formulation()` switches it off, so that XLA's
# cost analysis counts the model's own FLOPs; COSNET_DENSE_GROUP_WIDTH=0 in
# the environment switches it off in a process (for A/B timings).
def _dense_group_width() -> int:
  text = os.environ.get('COSNET_DENSE_GROUP_WIDTH', '4')
  try:
    return int(text)
  except ValueError:
    raise ValueError(f'environment COSNET_DENSE_GROUP_WIDTH={text!r}: expected an '
                     'integer (input channels per group; 0 = never dense)') from None


DENSE_GROUP_WIDTH = _dense_group_width()


def _fused_projection_default() -> bool:
  text = os.environ.get('COSNET_FUSED_PROJECTION', '1')
  if text not in ('0', '1'):
    raise ValueError(f'environment COSNET_FUSED_PROJECTION={text!r}: expected 0 or 1')
  return text == '1'


# Training-mode projection heads as one matmul instead of conv -> BN -> conv
# -> BN -> conv (models/heads.py explains). COSNET_FUSED_PROJECTION=0 in the
# environment switches it off in a process (for A/B timings).
FUSED_PROJECTION = _fused_projection_default()


@contextlib.contextmanager
def reference_formulation():
  """Within: the layers as the model defines them, for counting its FLOPs.

  Every grouped conv runs as per-group slices (the block-diagonal dense conv
  counts multiply-adds on zeros) and the projection heads layer by layer.
  """
  global DENSE_GROUP_WIDTH, FUSED_PROJECTION
  saved = DENSE_GROUP_WIDTH, FUSED_PROJECTION
  DENSE_GROUP_WIDTH, FUSED_PROJECTION = 0, False
  try:
    yield
  finally:
    DENSE_GROUP_WIDTH, FUSED_PROJECTION = saved


class GroupedConv(nn.Module):
  """nn.Conv(feature_group_count=groups) computed as dense convs.

  Same variables as nn.Conv (`kernel` [k, k, C_in/groups, features], `bias`).
  XLA:CPU runs grouped convolutions (and their gradients) several times slower
  than the dense ones (3x3, 16->32 channels, 4x320x320, forward + backward:
  groups=4 took 10.8 s, four dense slices 1.1 s), so each group is one dense
  conv on its slice of the channels and the outputs are concatenated; groups
  of at most DENSE_GROUP_WIDTH input channels run as one block-diagonal
  dense conv instead (above).
  """
  features: int
  kernel: int
  stride: int = 1
  groups: int = 2
  use_bias: bool = False
  dtype: Any = jnp.float32
  kernel_init: Any = he_fan_out
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    g, c_in = self.groups, x.shape[-1]
    if c_in % g or self.features % g:
      raise ValueError(f'{self.name}: channels {c_in} -> {self.features} not divisible '
                       f'by groups={g}')
    k = self.kernel
    kernel = self.param('kernel', self.kernel_init, (k, k, c_in // g, self.features),
                        jnp.float32)
    x = x.astype(self.dtype)
    kernel = kernel.astype(self.dtype)
    ci, co, pad = c_in // g, self.features // g, k // 2
    if ci <= DENSE_GROUP_WIDTH:
      y = lax.conv_general_dilated(
          x, block_diagonal_kernel(kernel, g), (self.stride, self.stride),
          ((pad, pad), (pad, pad)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      return self._add_bias(y)
    outs = [lax.conv_general_dilated(
        x[..., i * ci:(i + 1) * ci], kernel[..., i * co:(i + 1) * co],
        (self.stride, self.stride), ((pad, pad), (pad, pad)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC')) for i in range(g)]
    return self._add_bias(jnp.concatenate(outs, axis=-1))

  def _add_bias(self, y: jax.Array) -> jax.Array:
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (self.features,), jnp.float32).astype(
          self.dtype)
    return y


class PointwiseConv(nn.Module):
  """1x1 stride-1 conv as one [N, C_in] x [C_in, features] matmul (N = B*H*W).

  Same variables as nn.Conv (`kernel` [1, 1, C_in, features], `bias`). On
  XLA:CPU the 2-d matmul's kernel gradient is much faster than the conv's
  (32->32 channels on 4x320x320, forward + backward: 1.36 s as a conv, 0.30 s).
  """
  features: int
  use_bias: bool = False
  dtype: Any = jnp.float32
  kernel_init: Any = he_fan_out
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c_in = x.shape[-1]
    kernel = self.param('kernel', self.kernel_init, (1, 1, c_in, self.features), jnp.float32)
    y = x.astype(self.dtype).reshape(-1, c_in) @ kernel[0, 0].astype(self.dtype)
    y = y.reshape(*x.shape[:-1], self.features)
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (self.features,), jnp.float32).astype(
          self.dtype)
    return y


def conv(features: int, kernel: int, *, stride: int = 1, groups: int = 1,
         use_bias: bool = False, dtype: Any = jnp.float32, name: str | None = None,
         kernel_init=he_fan_out, bias_init=nn.initializers.zeros) -> nn.Module:
  """kxk conv, padding k//2 on every side, kernel [k, k, C_in/groups, features]."""
  if groups > 1:
    return GroupedConv(features, kernel, stride, groups, use_bias, dtype, kernel_init,
                       bias_init, name=name)
  if kernel == 1 and stride == 1:
    return PointwiseConv(features, use_bias, dtype, kernel_init, bias_init, name=name)
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=use_bias, dtype=dtype,
                 param_dtype=jnp.float32, kernel_init=kernel_init, bias_init=bias_init,
                 name=name)


def batch_norm(train: bool, *, axis_name: str | None = None, dtype: Any = jnp.float32,
               name: str | None = None) -> nn.BatchNorm:
  """BatchNorm over the last axis; batch statistics when `train`, running ones otherwise."""
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                      epsilon=BN_EPS, axis_name=axis_name if train else None,
                      dtype=dtype, param_dtype=jnp.float32, name=name)
