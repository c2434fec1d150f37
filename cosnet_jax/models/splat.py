"""Split-attention convolution (ResNeSt's SplAtConv2d, original release).

Layer order (submodule names match the PyTorch state dict for the converter):
  conv : kxk conv, C_in -> channels*radix, groups = cardinality*radix
  bn0  : BN, ReLU                                   -> splits r = 0..radix-1
  gap  = mean over H, W of sum_r split_r            -> [B, 1, 1, channels]
  fc1  : 1x1 conv (+bias), channels -> inter, groups = cardinality; bn1; ReLU
  fc2  : 1x1 conv (+bias), inter -> channels*radix, groups = cardinality
  attention = softmax over radix of fc2 viewed as [radix, channels]
  out  = sum_r attention_r * split_r                -> [B, H', W', channels]
with inter = max(C_in * radix // 4, 32).

This is the original release's attention layout (view(B, radix, channels)),
which the decoder's cardinality-2 blocks inherit from OCTA-Net; for the
encoder's cardinality 1 it equals the later rSoftMax version, so the public
ImageNet weights apply unchanged.

Batch of 1 in training mode: bn1 normalises the pooled [B, 1, 1, inter]
vector with statistics over the (global) batch. With a single image its
variance is 0, so bn1 outputs its bias and the attention does not depend on
the input during that step (PyTorch raises an error instead). With
cross-replica BN the statistics are over the global batch, so this only
happens when the global batch is 1.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cosnet_jax.models.conv_bn import batch_norm, conv
from cosnet_jax.models.formulation import REFERENCE, Formulation


class SplitAttentionConv(nn.Module):
  """x [B, H, W, C_in] -> [B, H/stride, W/stride, channels]."""
  channels: int
  kernel: int = 3
  stride: int = 1
  radix: int = 2
  cardinality: int = 1
  use_bias: bool = False
  reduction: int = 4
  min_inter: int = 32
  dtype: Any = jnp.float32
  axis_name: str | None = None
  formulation: Formulation = REFERENCE

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    c_in = x.shape[-1]
    inter = max(c_in * self.radix // self.reduction, self.min_inter)
    y = conv(self.channels * self.radix, self.kernel, stride=self.stride,
             groups=self.cardinality * self.radix, use_bias=self.use_bias,
             dtype=self.dtype, formulation=self.formulation, name='conv')(x)
    y = batch_norm(train, axis_name=self.axis_name, dtype=self.dtype, name='bn0')(y)
    y = nn.relu(y)
    b, h, w, _ = y.shape
    splits = y.reshape(b, h, w, self.radix, self.channels)
    gap = jnp.mean(jnp.sum(splits, axis=3), axis=(1, 2), keepdims=True)
    gap = conv(inter, 1, groups=self.cardinality, use_bias=True, dtype=self.dtype,
               formulation=self.formulation, name='fc1')(gap)
    gap = batch_norm(train, axis_name=self.axis_name, dtype=self.dtype, name='bn1')(gap)
    gap = nn.relu(gap)
    logits = conv(self.channels * self.radix, 1, groups=self.cardinality, use_bias=True,
                  dtype=self.dtype, formulation=self.formulation, name='fc2')(gap)
    logits = logits.reshape(b, 1, 1, self.radix, self.channels)
    attention = jax.nn.softmax(logits.astype(jnp.float32), axis=3).astype(y.dtype)
    return jnp.sum(attention * splits, axis=3)
