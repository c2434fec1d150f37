"""Shift-robust resampling (not COSNet; `model.blur_pool`, `model.upsample`).

Why: a trained COSNet's test Dice rises from 0.878 to 0.885 when its maps are
averaged over the four one-pixel shifts of the input (experiments/README.md,
"Flip test-time augmentation"): its output depends on where a vessel falls on
the stride-2 grids. Two sources are removed here:
  * strided down-sampling without a low-pass filter (stride-2 stem conv, 3x3/2
    max pool): `blur_downsample` applies the [1, 2, 1] / 4 binomial filter in
    both directions before keeping every second pixel ("BlurPool", Zhang 2019);
  * the 2x2 stride-2 transposed conv, whose even and odd output pixels come
    from different kernel taps (a checkerboard): `UpResize` is a 1x1 conv
    followed by bilinear 2x up-sampling (= resize-then-conv with a 1x1 kernel,
    the two commute because bilinear weights sum to one).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cosnet_jax.models.conv_bn import he_fan_out


def _blur_down_axis(x: jax.Array, axis: int) -> jax.Array:
  """[.., n, ..] -> [.., n/2, ..]: out[i] = (x[2i-1] + 2 x[2i] + x[2i+1]) / 4,
  reflect padding (x[-1] = x[1], x[n] = x[n-2])."""
  n = x.shape[axis]
  if n % 2:
    raise ValueError(f'blur_downsample needs an even size, got {n} on axis {axis}')
  pad = [(0, 0)] * x.ndim
  pad[axis] = (1, 1)
  xp = jnp.pad(x, pad, mode='reflect')
  take = lambda start: jax.lax.slice_in_dim(xp, start, start + n - 1, stride=2, axis=axis)
  return (take(0) + 2 * take(1) + take(2)) * 0.25


def blur_downsample(x: jax.Array) -> jax.Array:
  """Binomial 3x3 low-pass, then stride 2: [B, H, W, C] -> [B, H/2, W/2, C] (H, W even)."""
  return _blur_down_axis(_blur_down_axis(x, 1), 2)


def _bilinear_up_axis(x: jax.Array, axis: int) -> jax.Array:
  """[.., n, ..] -> [.., 2n, ..], half-pixel centres, edge clamp:
  out[2i] = 3/4 x[i] + 1/4 x[i-1], out[2i+1] = 3/4 x[i] + 1/4 x[i+1]."""
  n = x.shape[axis]
  first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
  last = jax.lax.slice_in_dim(x, n - 1, n, axis=axis)
  prev = jnp.concatenate([first, jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis=axis)
  nxt = jnp.concatenate([jax.lax.slice_in_dim(x, 1, n, axis=axis), last], axis=axis)
  even = 0.75 * x + 0.25 * prev
  odd = 0.75 * x + 0.25 * nxt
  out = jnp.stack([even, odd], axis=axis + 1)
  shape = list(x.shape)
  shape[axis] = 2 * n
  return out.reshape(shape)


def bilinear_upsample2x(x: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, 2H, 2W, C], the same as jax.image.resize(..., 'linear')."""
  return _bilinear_up_axis(_bilinear_up_axis(x, 1), 2)


class UpResize(nn.Module):
  """1x1 conv (+bias) then bilinear 2x: x [B, H, W, C] -> [B, 2H, 2W, features].

  Drop-in for `decoder.UpConv2x2` (same role, kernel [1, 1, C, features]).
  """
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    kernel = self.param('kernel', he_fan_out, (1, 1, c, self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    # The 1x1 conv runs at the low resolution (4x fewer FLOPs than after the resize).
    y = jnp.einsum('bhwc,co->bhwo', x.astype(self.dtype), kernel[0, 0].astype(self.dtype))
    return bilinear_upsample2x(y + bias.astype(self.dtype))
