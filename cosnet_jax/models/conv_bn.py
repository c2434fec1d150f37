"""Conv and BatchNorm layers with the project's conventions.

Convs: NHWC, PyTorch-style symmetric padding k//2 (so that ImageNet weights
line up exactly; flax 'SAME' pads stride-2 convs asymmetrically), He-normal
(fan-out) kernel init as in the ResNet/ResNeSt code, float32 params, compute in
`dtype`. BatchNorm: momentum 0.9 (PyTorch 0.1), eps 1e-5, statistics computed in
float32 and synchronised over `axis_name` when given (cross-replica BN).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

BN_MOMENTUM = 0.9
BN_EPS = 1e-5

he_fan_out = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def conv(features: int, kernel: int, *, stride: int = 1, groups: int = 1,
         use_bias: bool = False, dtype: Any = jnp.float32, name: str | None = None,
         kernel_init=he_fan_out, bias_init=nn.initializers.zeros) -> nn.Conv:
  """kxk conv, padding k//2 on every side, kernel [k, k, C_in/groups, features]."""
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), feature_group_count=groups,
                 use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                 kernel_init=kernel_init, bias_init=bias_init, name=name)


def batch_norm(train: bool, *, axis_name: str | None = None, dtype: Any = jnp.float32,
               name: str | None = None) -> nn.BatchNorm:
  """BatchNorm over the last axis; batch statistics when `train`, running ones otherwise."""
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                      epsilon=BN_EPS, axis_name=axis_name if train else None,
                      dtype=dtype, param_dtype=jnp.float32, name=name)
