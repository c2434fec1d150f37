"""Per-branch output heads: 1-channel segmentation logits and pixel embeddings."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cosnet_jax.models.conv_bn import BN_EPS, BN_MOMENTUM, batch_norm, conv, he_fan_out
from cosnet_jax.models.formulation import REFERENCE, Formulation


class SegmentationHead(nn.Module):
  """1x1 conv (+bias): [B, H, W, C] -> logits [B, H, W, 1] float32 (pre-sigmoid)."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return conv(1, 1, use_bias=True, dtype=self.dtype, name='conv')(x).astype(jnp.float32)


class _PointwiseVars(nn.Module):
  """The variables of conv_bn.PointwiseConv (`kernel` [1, 1, C, F], `bias` [F]), unused."""
  features: int

  @nn.compact
  def __call__(self, c_in: int) -> tuple[jax.Array, jax.Array]:
    kernel = self.param('kernel', he_fan_out, (1, 1, c_in, self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    return kernel[0, 0], bias


class _BatchNormVars(nn.Module):
  """The variables of nn.BatchNorm over C features (params scale / bias, batch_stats mean / var)."""

  @nn.compact
  def __call__(self, c: int):
    scale = self.param('scale', nn.initializers.ones, (c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones((c,), jnp.float32))
    return scale, bias, ra_mean, ra_var


class ProjectionHead(nn.Module):
  """[B, H, W, C] -> embeddings [B, H, W, embed_dim] float32, unit L2 norm per pixel.

  conv1 3x3 (no bias) -> bn1 -> conv2 1x1 (+bias) -> bn2 -> conv3 1x1 (+bias)
  -> L2 normalisation (norm floored at 1e-12). No ReLU, as in the authors'
  'convmlp' head.

  `fused` (default `formulation.fused_projection`, models/formulation.py; float32 compute
  only): in training mode
  everything between conv1 and the normalisation is affine in conv1's output
  x1 [N, E] (N = B*H*W pixels): BN with batch statistics is a per-channel
  affine map, and the 1x1 convs are matmuls. With m1 and S1 = x1^T x1 / N the
  mean and second moment of x1 (synchronised over `axis_name`):
    bn1 scale   a1 = g1 / sqrt(var1 + eps),       var1 = diag(S1) - m1^2
    conv2 out   z2 = x1 A + const,                 A = diag(a1) W2
    bn2 stats   mean2 = beta1 W2 + b2,             var2 = diag(A^T (S1 - m1 m1^T) A)
    conv3 out   z3 = (x1 - m1) M + beta2 W3 + b3,  M = A diag(a2) W3
  so the head is one [N, E] x [E, E] matmul plus the [E, E] Gram matrix,
  where the layer-by-layer form passes over the [N, E] maps for two matmuls,
  two BN statistics and two normalisations (and as often again backward).
  Why: those memory-bound passes are a large share of the CPU model's step
  (experiments/README.md, "Performance"). The running statistics are updated with the same mean / var
  that the layers would compute (flax's E[x^2] - E[x]^2, clipped at 0), and
  the variables are the layers' own (same names, shapes, init), so
  checkpoints do not depend on the flag. Eval mode runs the layers.
  """
  embed_dim: int
  dtype: Any = jnp.float32
  axis_name: str | None = None
  fused: bool | None = None
  formulation: Formulation = REFERENCE

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    y = conv(self.embed_dim, 3, dtype=self.dtype, name='conv1')(x)
    fused = self.formulation.fused_projection if self.fused is None else self.fused
    if train and fused and jnp.dtype(self.dtype) == jnp.float32:
      y = self._fused_train(y)
    else:
      bn = lambda name: batch_norm(train, axis_name=self.axis_name, dtype=self.dtype,
                                   name=name)
      y = bn('bn1')(y)
      y = conv(self.embed_dim, 1, use_bias=True, dtype=self.dtype, name='conv2')(y)
      y = bn('bn2')(y)
      y = conv(self.embed_dim, 1, use_bias=True, dtype=self.dtype, name='conv3')(y)
    y = y.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(jnp.square(y), axis=-1, keepdims=True))
    return y / jnp.maximum(norm, 1e-12)

  def _fused_train(self, x1: jax.Array) -> jax.Array:
    """x1 [B, H, W, E] conv1 output -> conv3 output [B, H, W, E] (training mode)."""
    e = self.embed_dim
    g1, beta1, ra_mean1, ra_var1 = _BatchNormVars(name='bn1')(e)
    w2, b2 = _PointwiseVars(e, name='conv2')(e)
    g2, beta2, ra_mean2, ra_var2 = _BatchNormVars(name='bn2')(e)
    w3, b3 = _PointwiseVars(e, name='conv3')(e)
    flat = x1.reshape(-1, e)
    hi = lax.Precision.HIGHEST
    m1 = jnp.mean(flat, axis=0)
    s1 = jnp.dot(flat.T, flat, precision=hi) / flat.shape[0]
    initializing = self.is_initializing()
    if self.axis_name is not None and not initializing:
      # One collective for both moments (as flax BN does per layer).
      both = lax.pmean(jnp.concatenate([s1, m1[None]], axis=0), self.axis_name)
      s1, m1 = both[:e], both[e]
    var1 = jnp.maximum(0.0, jnp.diagonal(s1) - jnp.square(m1))
    a1 = g1 * lax.rsqrt(var1 + BN_EPS)
    a = a1[:, None] * w2
    cov = s1 - jnp.outer(m1, m1)
    mean2 = jnp.dot(beta1, w2, precision=hi) + b2
    var2 = jnp.maximum(0.0, jnp.einsum('ij,ik,kj->j', a, cov, a, precision=hi))
    a2 = g2 * lax.rsqrt(var2 + BN_EPS)
    m = jnp.dot(a * a2[None, :], w3, precision=hi)
    shift = jnp.dot(beta2, w3, precision=hi) + b3 - jnp.dot(m1, m, precision=hi)
    if not initializing:
      for ra, value in ((ra_mean1, m1), (ra_var1, var1), (ra_mean2, mean2),
                        (ra_var2, var2)):
        ra.value = BN_MOMENTUM * ra.value + (1 - BN_MOMENTUM) * value
    # x1 M - m1 M rather than (x1 - m1) M: no centred [N, E] copy is written.
    z3 = jnp.dot(flat, m) + shift
    return z3.reshape(x1.shape)
