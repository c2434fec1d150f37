"""ResNeSt encoder (ResNeSt-50 layout: deep stem, avg-down, avd after split attention).

Submodule names mirror the official PyTorch state dict ("conv1.0" ->
`conv1_0`, "layer2.0.downsample.1" -> `layer2_0/downsample_1`) so that
`pretrained.py` can map keys mechanically.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cosnet_jax.models.antialias import blur_downsample
from cosnet_jax.models.conv_bn import batch_norm, conv
from cosnet_jax.models.pooling import max_pool_3x3
from cosnet_jax.models.splat import SplitAttentionConv
from cosnet_jax.models.formulation import REFERENCE, Formulation

EXPANSION = 4


def _avg_pool_3x3(x: jax.Array, stride: int) -> jax.Array:
  """AvgPool2d(3, stride, padding=1), zero padding counted (PyTorch default)."""
  return nn.avg_pool(x, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)),
                     count_include_pad=True)


def _max_pool_3x3(x: jax.Array, stride: int) -> jax.Array:
  """MaxPool2d(3, stride, padding=1) as flax's reduce_window."""
  return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)))


class Bottleneck(nn.Module):
  """ResNeSt bottleneck: x [B, H, W, C_in] -> [B, H/stride, W/stride, 4*width].

  conv1 1x1 -> bn1 -> ReLU -> conv2 (split attention 3x3, radix, cardinality 1)
  -> AvgPool 3x3/stride if stride > 1 -> conv3 1x1 -> bn3; shortcut
  AvgPool(stride) -> downsample_1 1x1 -> downsample_2 BN when the shape changes;
  ReLU(sum). With `blur_pool` (stride 2 only) both average pools are
  `antialias.blur_downsample` instead.
  """
  width: int
  stride: int = 1
  radix: int = 2
  dtype: Any = jnp.float32
  axis_name: str | None = None
  blur_pool: bool = False
  formulation: Formulation = REFERENCE

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    bn = lambda name: batch_norm(train, axis_name=self.axis_name, dtype=self.dtype,
                                 name=name)
    out_ch = self.width * EXPANSION
    y = conv(self.width, 1, dtype=self.dtype, name='conv1')(x)
    y = nn.relu(bn('bn1')(y))
    y = SplitAttentionConv(self.width, 3, radix=self.radix, cardinality=1,
                           use_bias=False, dtype=self.dtype, axis_name=self.axis_name,
                           formulation=self.formulation, name='conv2')(y, train)
    blur = self.blur_pool and self.stride == 2
    if self.stride > 1:
      y = blur_downsample(y) if blur else _avg_pool_3x3(y, self.stride)
    y = conv(out_ch, 1, dtype=self.dtype, name='conv3')(y)
    y = bn('bn3')(y)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != out_ch:
      if blur:
        shortcut = blur_downsample(shortcut)
      elif self.stride > 1:
        shortcut = nn.avg_pool(shortcut, (self.stride, self.stride),
                               strides=(self.stride, self.stride))
      shortcut = conv(out_ch, 1, dtype=self.dtype, name='downsample_1')(shortcut)
      shortcut = bn('downsample_2')(shortcut)
    return nn.relu(y + shortcut.astype(y.dtype))


class ResNeStEncoder(nn.Module):
  """image [B, H, W, 3] -> (x0, x2, x3, x4, x5).

  x0: [B, H/2,  W/2,  2*stem_width]     stem (conv1_0..conv1_6, bn1, ReLU)
  x2: [B, H/4,  W/4,  4*stage_widths[0]] layer1 (after 3x3/2 max pool)
  x3: [B, H/8,  W/8,  4*stage_widths[1]] layer2
  x4: [B, H/16, W/16, 4*stage_widths[2]] layer3
  x5: [B, H/32, W/32, 4*stage_widths[3]] layer4
  Without `stem_pool` (not ResNeSt; same parameters) the max pool is left
  out, so layer1..layer4 run at twice the resolution (x2 at H/2 ... x5 at
  H/16): a high-resolution path for 1-3 px vessels, about 4x the FLOPs.
  With `blur_pool` (not ResNeSt; same parameters) every down-sampling is
  anti-aliased: conv1_0 runs at stride 1 and its BN + ReLU output is
  blur-downsampled, the 3x3/2 max pool becomes a 3x3/1 max pool + blur
  (MaxBlurPool), and the bottlenecks' average pools become blurs.
  """
  stem_width: int = 32
  stage_widths: Sequence[int] = (64, 128, 256, 512)
  stage_blocks: Sequence[int] = (3, 4, 6, 3)
  radix: int = 2
  dtype: Any = jnp.float32
  axis_name: str | None = None
  remat: bool = False
  blur_pool: bool = False
  stem_pool: bool = True
  formulation: Formulation = REFERENCE

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, ...]:
    bn = lambda name: batch_norm(train, axis_name=self.axis_name, dtype=self.dtype,
                                 name=name)
    sw = self.stem_width
    x = conv(sw, 3, stride=1 if self.blur_pool else 2, dtype=self.dtype, name='conv1_0')(x)
    x = nn.relu(bn('conv1_1')(x))
    if self.blur_pool:
      x = blur_downsample(x)
    x = conv(sw, 3, dtype=self.dtype, name='conv1_3')(x)
    x = nn.relu(bn('conv1_4')(x))
    x = conv(2 * sw, 3, dtype=self.dtype, name='conv1_6')(x)
    x0 = nn.relu(bn('bn1')(x))
    # MaxPool2d(3, 2, padding=1); with formulation.strided_max_pool as nine
    # strided maxima (pooling.py: same values and gradient, without XLA:CPU's
    # slow reduce_window / select_and_scatter).
    pool = max_pool_3x3 if self.formulation.strided_max_pool else _max_pool_3x3
    if not self.stem_pool:
      x = x0
    elif self.blur_pool:
      x = blur_downsample(pool(x0, 1))
    else:
      x = pool(x0, 2)
    block_cls = nn.remat(Bottleneck, static_argnums=(2,)) if self.remat else Bottleneck
    feats = [x0]
    for s, (width, blocks) in enumerate(zip(self.stage_widths, self.stage_blocks)):
      for i in range(blocks):
        stride = 2 if (s > 0 and i == 0) else 1
        x = block_cls(width, stride, self.radix, self.dtype, self.axis_name,
                      self.blur_pool, self.formulation,
                      name=f'layer{s + 1}_{i}')(x, train)
      feats.append(x)
    return tuple(feats)
