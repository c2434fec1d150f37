"""Two-branch decoder of OCTA-Net's coarse stage (COSNet's SRF_UNet).

Thick branch (all encoder stages), channels c0 = x0's, c2..c4 = x2..x4's:
  d5 = RCB(c4)(cat[x4, up(c4)(x5)])      H/16
  d4 = RCB(c3)(cat[x3, up(c3)(d5)])      H/8
  d3 = RCB(c2)(cat[x2, up(c2)(d4)])      H/4
  d2 = RCB(c0)(cat[x0, up(c0)(d3)])      H/2
  d1 = RCB(head)(up(c0)(d2))             H      -> [B, H, W, head_width]
Thin branch (shallow stages only):
  d2 = RCB(c0)(cat[x0, up(c0)(x2)])      H/2
  d1 = RCB(head)(up(c0)(d2))             H      -> [B, H, W, head_width]
Where a skip has the resolution of the map it joins (x2 and x0 both at H/2
when the encoder has no stem pool, model.stem_pool=False), that level has no
`up` and concatenates directly.
`up` is a 2x2 stride-2 transposed conv (+bias), or with upsample='bilinear'
(not COSNet) `antialias.UpResize` (1x1 conv + bilinear 2x); RCB is the
residual conv block.
With a full-resolution feature map `full` [B, H, W, F] (model.full_res_width,
not COSNet), d1 = RCB(head)(cat[up(c0)(d2), full]) in both branches.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cosnet_jax.models.antialias import UpResize
from cosnet_jax.models.conv_bn import batch_norm, conv, he_fan_out
from cosnet_jax.models.splat import SplitAttentionConv
from cosnet_jax.models.formulation import REFERENCE, Formulation


class UpConv2x2(nn.Module):
  """ConvTranspose2d(k=2, s=2): x [B, H, W, C] -> [B, 2H, 2W, features].

  y[b, 2i+p, 2j+q, o] = sum_c x[b, i, j, c] * kernel[p, q, c, o] + bias[o].
  The 2x2 stride-2 windows do not overlap, so this is one matmul followed by a
  depth-to-space reshape (much faster on CPU than an input-dilated conv).
  The matmul is [B*H*W, C] x [C, (p, q, o)], so its output is pixel-major and
  the depth-to-space moves rows of 2*features contiguous values (as an einsum
  XLA:CPU computed it channel-major, dominated by the transpose;
  experiments/README.md, "Performance").
  """
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    kernel = self.param('kernel', he_fan_out, (2, 2, c, self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    f = self.features
    k = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c, 4 * f).astype(self.dtype)
    y = jnp.dot(x.astype(self.dtype).reshape(b * h * w, c), k)       # [BHW, (p, q, o)]
    y = y.reshape(b, h, w, 2, 2, f).transpose(0, 1, 3, 2, 4, 5)      # [B, H, p, W, q, o]
    return y.reshape(b, 2 * h, 2 * w, f) + bias.astype(self.dtype)


class ResidualConvBlock(nn.Module):
  """RCB: x [B, H, W, C_in] -> [B, H, W, features].

  main: conv 3x3 (no bias) -> BN -> ReLU -> split attention 3x3 (radix 2,
  cardinality 2, bias) -> ReLU; shortcut: conv 1x1 (no bias) -> BN; ReLU(sum).
  """
  features: int
  dtype: Any = jnp.float32
  axis_name: str | None = None
  formulation: Formulation = REFERENCE

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    bn = lambda name: batch_norm(train, axis_name=self.axis_name, dtype=self.dtype,
                                 name=name)
    y = conv(self.features, 3, dtype=self.dtype, name='conv')(x)
    y = nn.relu(bn('bn')(y))
    y = SplitAttentionConv(self.features, 3, radix=2, cardinality=2, use_bias=True,
                           dtype=self.dtype, axis_name=self.axis_name,
                           formulation=self.formulation, name='splat')(y, train)
    y = nn.relu(y)
    shortcut = conv(self.features, 1, dtype=self.dtype, name='shortcut_conv')(x)
    shortcut = bn('shortcut_bn')(shortcut)
    return nn.relu(y + shortcut)


def _with_full(up: jax.Array, full: jax.Array | None) -> jax.Array:
  return up if full is None else jnp.concatenate([up, full.astype(up.dtype)], axis=-1)


UPSAMPLERS = {'transposed': UpConv2x2, 'bilinear': UpResize}


def _blocks(remat: bool):
  if remat:
    return nn.remat(ResidualConvBlock, static_argnums=(2,))
  return ResidualConvBlock


class ThickDecoder(nn.Module):
  """(x0, x2, x3, x4, x5) -> d1 [B, H, W, head_width] (see module docstring)."""
  head_width: int
  dtype: Any = jnp.float32
  axis_name: str | None = None
  remat: bool = False
  upsample: str = 'transposed'
  formulation: Formulation = REFERENCE

  @nn.compact
  def __call__(self, feats: tuple[jax.Array, ...], train: bool,
               full: jax.Array | None = None) -> jax.Array:
    up_cls = UPSAMPLERS[self.upsample]
    x0, x2, x3, x4, x5 = feats
    rcb = _blocks(self.remat)
    kw = dict(dtype=self.dtype, axis_name=self.axis_name, formulation=self.formulation)
    d = x5
    for level, skip in ((5, x4), (4, x3), (3, x2), (2, x0)):
      c = skip.shape[-1]
      if d.shape[1:3] != skip.shape[1:3]:
        d = up_cls(c, dtype=self.dtype, name=f'up{level}')(d)
      d = rcb(c, **kw, name=f'rcb{level}')(jnp.concatenate([skip, d], axis=-1), train)
    up = up_cls(x0.shape[-1], dtype=self.dtype, name='up1')(d)
    return rcb(self.head_width, **kw, name='rcb1')(_with_full(up, full), train)


class ThinDecoder(nn.Module):
  """(x0, x2, ...) -> d1 [B, H, W, head_width] from the stem and layer1 only."""
  head_width: int
  dtype: Any = jnp.float32
  axis_name: str | None = None
  remat: bool = False
  upsample: str = 'transposed'
  formulation: Formulation = REFERENCE

  @nn.compact
  def __call__(self, feats: tuple[jax.Array, ...], train: bool,
               full: jax.Array | None = None) -> jax.Array:
    up_cls = UPSAMPLERS[self.upsample]
    x0, x2 = feats[0], feats[1]
    rcb = _blocks(self.remat)
    kw = dict(dtype=self.dtype, axis_name=self.axis_name, formulation=self.formulation)
    c0 = x0.shape[-1]
    up = x2 if x2.shape[1:3] == x0.shape[1:3] else up_cls(c0, dtype=self.dtype,
                                                          name='up2')(x2)
    d = rcb(c0, **kw, name='rcb2')(jnp.concatenate([x0, up], axis=-1), train)
    up = up_cls(c0, dtype=self.dtype, name='up1')(d)
    return rcb(self.head_width, **kw, name='rcb1')(_with_full(up, full), train)
