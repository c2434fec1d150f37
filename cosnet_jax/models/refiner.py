"""Fine-tune (refinement) module: learned 3x3 aggregation of max(thick, thin).

  x   = cat[image, thick, thin]                          [B, H, W, 3]
  w   = softmax_k(conv3(ReLU(BN(conv2(ReLU(BN(conv1(x))))))))   [B, H, W, n*n]
  sal = max(thick, thin)
  out = sum_k w_k * sal(y + dy_k, x + dx_k)              [B, H, W, 1]
with k = (dy + n//2) * n + (dx + n//2) (row-major offsets, zero outside the
image, as the authors' one-hot "mapping" kernel). The output is a convex
combination of probabilities, so it stays in [0, 1]; no sigmoid.

Deviation from the authors (documented choice): their last conv is followed by
BN + ReLU, which removes its one-hot bias at the first training step and
clips negative logits. Here the last conv feeds the softmax directly; its
kernel starts at zero and its bias at `center_logit` * one-hot(centre), so at
init every pixel gets the same weights softmax(bias) and the module is the
identity on sal up to 8*exp(-center_logit): 3.6e-4 at the default 10 (below
1e-6 from 16 on, but the more saturated the softmax, the smaller the initial
gradients; Adam rescales them, 10 keeps them well above its epsilon).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cosnet_jax.errors import ConfigError
from cosnet_jax.models.conv_bn import batch_norm, conv


def neighbourhood_stack(x: jax.Array, n: int) -> jax.Array:
  """x [B, H, W, 1] -> [B, H, W, n*n]; channel k = x shifted by offset k (zero padded)."""
  r = n // 2
  h, w = x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
  shifts = [padded[:, dy:dy + h, dx:dx + w, :] for dy in range(n) for dx in range(n)]
  return jnp.concatenate(shifts, axis=-1)


class Refiner(nn.Module):
  """(image, thick, thin) [B, H, W, 1] each -> refined probability [B, H, W, 1] float32."""
  channels: Sequence[int] = (64, 128)
  neighbourhood: int = 3
  center_logit: float = 10.0
  init_std: float = 0.1
  dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, image: jax.Array, thick: jax.Array, thin: jax.Array,
               train: bool = False) -> jax.Array:
    for name, a in (('image', image), ('thick', thick), ('thin', thin)):
      if a.ndim != 4 or a.shape[-1] != 1 or a.shape != image.shape:
        raise ValueError(f'Refiner input {name} must be [B, H, W, 1] like image '
                         f'{image.shape}, got {a.shape}')
    n = self.neighbourhood
    if n % 2 != 1:
      raise ValueError(f'config.refine.neighbourhood={n}: expected an odd size')
    x = jnp.concatenate([image, thick, thin], axis=-1).astype(self.dtype)
    init = nn.initializers.normal(self.init_std)
    for i, c in enumerate(self.channels):
      x = conv(c, 3, dtype=self.dtype, kernel_init=init, name=f'conv{i + 1}')(x)
      x = batch_norm(train, axis_name=self.axis_name, dtype=self.dtype,
                     name=f'bn{i + 1}')(x)
      x = nn.relu(x)
    centre = (n * n) // 2

    def bias_init(key, shape, dtype=jnp.float32):
      del key
      return jnp.zeros(shape, dtype).at[centre].set(self.center_logit)

    logits = conv(n * n, 3, use_bias=True, dtype=self.dtype,
                  kernel_init=nn.initializers.zeros, bias_init=bias_init,
                  name=f'conv{len(self.channels) + 1}')(x)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    sal = jnp.maximum(thick, thin).astype(jnp.float32)
    return jnp.sum(neighbourhood_stack(sal, n) * weights, axis=-1, keepdims=True)


def build_refiner(refine_cfg, *, axis_name: str | None = None) -> Refiner:
  """Refiner for `config.refine` (reads channels, neighbourhood, center_logit,
  init_std, dtype; other fields of the section belong to training)."""
  dtype = refine_cfg.dtype
  if dtype not in ('float32', 'bfloat16'):
    raise ConfigError(f"config.refine.model.dtype={dtype!r}: expected 'float32' or 'bfloat16'")
  return Refiner(channels=tuple(refine_cfg.channels),
                 neighbourhood=int(refine_cfg.neighbourhood),
                 center_logit=float(refine_cfg.center_logit),
                 init_std=float(refine_cfg.init_std), dtype=jnp.dtype(dtype),
                 axis_name=axis_name)
