"""Max pooling with a gradient that XLA:CPU runs as element-wise work.

`max_pool_3x3(x, stride)` is `flax.linen.max_pool(x, (3, 3), strides, padding
((1, 1), (1, 1)))` (the ResNeSt stem's pool) with the same value and the same
gradient, computed differently:

* forward: the maximum of the nine (strided) shifted views of the -inf padded
  input, one loop fusion, instead of a `reduce_window`;
* backward: each output's cotangent goes to the FIRST tap in row-major window
  order that equals the maximum (what XLA's select-and-scatter does: its
  select is `>=`, so on ties the earlier element is kept), written back with
  nine interior-padded (strided) `pad`s, instead of a `select_and_scatter_add`.

Why: on XLA:CPU (jax 0.10) the `reduce_window` and especially the
`select_and_scatter_add` run on one thread at a few GB/s (experiments/README.md,
"Performance").
Ties are common there (the input is a ReLU output, half zeros), which is why
the backward copies select-and-scatter's rule rather than autodiff's of
`jnp.maximum` (which splits the cotangent between tied elements).

Layout: x [B, H, W, C] (NHWC), any float dtype; output [B, H', W', C] with
H' = (H - 1) // stride + 1 (the same for W).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_K = 3      # window
_PAD = 1    # on every side


def _out_size(size: int, stride: int) -> int:
  return (size + 2 * _PAD - _K) // stride + 1


def _taps(xp: jax.Array, ho: int, wo: int, stride: int) -> list[jax.Array]:
  """The nine window taps of the padded input, row-major: each [B, ho, wo, C]."""
  b, _, _, c = xp.shape
  return [lax.slice(xp, (0, i, j, 0),
                    (b, i + stride * (ho - 1) + 1, j + stride * (wo - 1) + 1, c),
                    (1, stride, stride, 1))
          for i in range(_K) for j in range(_K)]


def _pad_neg_inf(x: jax.Array) -> jax.Array:
  return jnp.pad(x, ((0, 0), (_PAD, _PAD), (_PAD, _PAD), (0, 0)),
                 constant_values=-jnp.inf)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool_3x3(x: jax.Array, stride: int) -> jax.Array:
  """3x3 max pool, padding 1, `stride` 1 or 2: [B, H, W, C] -> [B, H', W', C]."""
  return _forward(x, stride)[0]


def _forward(x, stride):
  if stride not in (1, 2):
    raise ValueError(f'max_pool_3x3: stride={stride}, expected 1 or 2')
  ho, wo = _out_size(x.shape[1], stride), _out_size(x.shape[2], stride)
  y = functools.reduce(jnp.maximum, _taps(_pad_neg_inf(x), ho, wo, stride))
  return y, (x, y)


def _backward(stride, residuals, dy):
  x, y = residuals
  xp = _pad_neg_inf(x)
  hp, wp = xp.shape[1], xp.shape[2]
  ho, wo = y.shape[1], y.shape[2]
  zero = jnp.zeros((), dy.dtype)
  taken = jnp.zeros(y.shape, bool)
  dxp = jnp.zeros(xp.shape, dy.dtype)
  for k, tap in enumerate(_taps(xp, ho, wo, stride)):
    i, j = divmod(k, _K)
    chosen = (tap == y) & ~taken
    taken = taken | chosen
    # Output (r, c) read input (i + stride*r, j + stride*c) of the padded x:
    # an interior-padded pad puts its cotangent back there.
    dxp = dxp + lax.pad(jnp.where(chosen, dy, zero), zero,
                        ((0, 0, 0),
                         (i, hp - i - (stride * (ho - 1) + 1), stride - 1),
                         (j, wp - j - (stride * (wo - 1) + 1), stride - 1),
                         (0, 0, 0)))
  return (dxp[:, _PAD:hp - _PAD, _PAD:wp - _PAD, :],)


max_pool_3x3.defvjp(_forward, _backward)
