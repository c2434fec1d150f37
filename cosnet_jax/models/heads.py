"""Per-branch output heads: 1-channel segmentation logits and pixel embeddings."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cosnet_jax.models.conv_bn import batch_norm, conv


class SegmentationHead(nn.Module):
  """1x1 conv (+bias): [B, H, W, C] -> logits [B, H, W, 1] float32 (pre-sigmoid)."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return conv(1, 1, use_bias=True, dtype=self.dtype, name='conv')(x).astype(jnp.float32)


class ProjectionHead(nn.Module):
  """[B, H, W, C] -> embeddings [B, H, W, embed_dim] float32, unit L2 norm per pixel.

  conv1 3x3 (no bias) -> bn1 -> conv2 1x1 (+bias) -> bn2 -> conv3 1x1 (+bias)
  -> L2 normalisation (norm floored at 1e-12). No ReLU, as in the authors'
  'convmlp' head.
  """
  embed_dim: int
  dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    bn = lambda name: batch_norm(train, axis_name=self.axis_name, dtype=self.dtype,
                                 name=name)
    y = conv(self.embed_dim, 3, dtype=self.dtype, name='conv1')(x)
    y = bn('bn1')(y)
    y = conv(self.embed_dim, 1, use_bias=True, dtype=self.dtype, name='conv2')(y)
    y = bn('bn2')(y)
    y = conv(self.embed_dim, 1, use_bias=True, dtype=self.dtype, name='conv3')(y)
    y = y.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(jnp.square(y), axis=-1, keepdims=True))
    return y / jnp.maximum(norm, 1e-12)
