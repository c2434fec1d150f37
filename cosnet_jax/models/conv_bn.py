"""Conv and BatchNorm layers with the project's conventions.

All convs keep nn.Conv's variables (`kernel` [k, k, C_in/groups, C_out], `bias`),
whatever computes them: 1x1 convs run as matmuls (much faster on XLA:CPU) and
grouped convs as `formulation.Formulation` says (dense convs on channel slices
on CPU).

Convs: NHWC, PyTorch-style symmetric padding k//2 (so that ImageNet weights
line up exactly; flax 'SAME' pads stride-2 convs asymmetrically), He-normal
(fan-out) kernel init as in the ResNet/ResNeSt code, float32 params, compute in
`dtype`. BatchNorm: momentum 0.9 (PyTorch 0.1), eps 1e-5, statistics computed in
float32 and synchronised over `axis_name` when given (cross-replica BN).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cosnet_jax.models.formulation import REFERENCE, Formulation

BN_MOMENTUM = 0.9
BN_EPS = 1e-5

he_fan_out = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def block_diagonal_kernel(kernel: jax.Array, groups: int) -> jax.Array:
  """Grouped kernel [kh, kw, C_in/g, C_out] -> dense [kh, kw, C_in, C_out].

  Input channel g*C_in/g + c feeds output g*C_out/g + o only (lax's grouping:
  contiguous channel blocks); all other entries are 0.
  """
  if groups == 1:
    return kernel
  kh, kw, cg, c_out = kernel.shape
  og = c_out // groups
  k = kernel.reshape(kh, kw, 1, cg, groups, og)
  eye = jnp.eye(groups, dtype=kernel.dtype).reshape(1, 1, groups, 1, groups, 1)
  return (k * eye).reshape(kh, kw, groups * cg, c_out)


class GroupedConv(nn.Module):
  """nn.Conv(feature_group_count=groups), computed as `formulation` says.

  Same variables as nn.Conv (`kernel` [k, k, C_in/groups, features], `bias`)
  in every formulation. 'native': one `lax.conv` with feature_group_count.
  'slices' (XLA:CPU, which runs grouped convolutions and their gradients
  several times slower than dense ones: 3x3, 16->32 channels, 4x320x320,
  forward + backward, groups=4 took 10.8 s, four dense slices 1.1 s): one
  dense conv per group on its slice of the channels, concatenated; groups of
  at most `formulation.dense_group_width` input channels run as one dense
  conv with the block-diagonal kernel instead (models/formulation.py).
  """
  features: int
  kernel: int
  stride: int = 1
  groups: int = 2
  use_bias: bool = False
  dtype: Any = jnp.float32
  kernel_init: Any = he_fan_out
  bias_init: Any = nn.initializers.zeros
  formulation: Formulation = REFERENCE

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
    f = self.formulation
    if f.grouped_conv == 'native':
      y = lax.conv_general_dilated(
          x, kernel, (self.stride, self.stride), ((pad, pad), (pad, pad)),
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=g)
      return self._add_bias(y)
    if ci <= f.dense_group_width:
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
         kernel_init=he_fan_out, bias_init=nn.initializers.zeros,
         formulation: Formulation = REFERENCE) -> nn.Module:
  """kxk conv, padding k//2 on every side, kernel [k, k, C_in/groups, features].

  `formulation` decides how a grouped conv is computed (GroupedConv).
  """
  if groups > 1:
    return GroupedConv(features, kernel, stride, groups, use_bias, dtype, kernel_init,
                       bias_init, formulation, name=name)
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
