"""Fast CPU convolutions: XLA:CPU compile options, and an im2col conv formulation.

1. `xla_compiler_options(platform, mode)`: what the train / eval steps should
   pass to `jax.jit(..., compiler_options=...)`. On CPU it keeps convolutions
   on XLA's own (Eigen) kernels instead of YNNPACK, whose kernel gradients run
   at 3-40 % of the matmul speed (Eigen: 25-100 %). Measured on the CPU model's
   train step: 0.77x the step time, same numbers (experiments/README.md).
   `CPU_XLA_FLAG` is the same setting as an XLA_FLAGS entry. `mode='infer'`
   (forward passes in eval mode: validation, `evaluate`, `predict`) also
   leaves reductions to XLA: YNNPACK's reduction fusions make the batch-8
   train step faster but a batch-1 forward slower (the paper model's
   304x304 inference 0.84-0.90 -> 0.48-0.52 s on 2 cores; neutral at
   batch 4).

2. `conv2d(impl='im2col')` / `Conv`: an alternative formulation of the conv
   (below). It computes the same function as `lax.conv` but measured no faster
   than (1) inside the train step, so the model does not use it; kept, tested,
   for backends where the kernel gradient is the bottleneck.

Why (XLA:CPU with its default YNNPACK convolutions, jax 0.10): the forward
convolution and its input gradient run near the machine's matmul speed, but
the kernel gradient (a "convolution" whose window is the whole image) runs at
1-40 % of it, and grouped convolutions are 10-100x slower than a dense one of
the same size in every direction (models/conv_bn.py runs those as dense convs
on channel slices).

`conv2d(..., impl='im2col')` computes the same function as `lax.conv` with:

* forward and input gradient: XLA's dense convolution;
* kernel gradient: an im2col contraction. The input is moved to channel-major
  layout once ([B, C, H, W]), the k*k shifted (and strided) windows are
  stacked into patches [B, k*k*C, H'*W'] (contiguous rows of W' pixels), and
  dK = sum_b patches_b @ dY_b, one batched dot_general;
* 1x1 stride-1 convolutions: a plain dot_general (its gradients are dots);
* groups > 1: the kernel is expanded to the equivalent block-diagonal dense
  kernel (groups x more multiply-adds, but dense kernels are that much faster);
  the gradient of the expansion picks the diagonal blocks back out.

Only the order of floating-point summation differs from `lax.conv`, so results
agree to float32 rounding (relative 1e-6). `impl='xla'` is plain `lax.conv`.

Layouts: x [B, H, W, C_in] (NHWC), kernel [kh, kw, C_in // groups, C_out]
(HWIO, as `flax.linen.Conv`), output [B, H', W', C_out].
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

IMPLS = ('xla', 'im2col')

# YNNPACK fusion kinds to keep on CPU: all defaults except individual convolutions.
CPU_COMPILER_OPTIONS = {
    'xla_cpu_experimental_ynn_fusion_type':
        'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE',
}
# Forward passes (eval mode) keep only YNNPACK's dots. Why: at batch 1 its
# reduction fusions (the split-attention pooling, the refiner's softmax, each
# fused with the element-wise work around it) took about 40 % of the paper
# model's forward; in the batch-8 train step they are faster than XLA's own
# (paired MFU 26-28 % with them, 21-23 % without; experiments/README.md).
CPU_INFER_COMPILER_OPTIONS = {
    'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT',
}
MODES = ('train', 'infer')
CPU_XLA_FLAG = '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution'
# COSNET_CPU_CONV_KERNELS=ynnpack restores XLA's default (for A/B benchmarks).
ENV_SWITCH = 'COSNET_CPU_CONV_KERNELS'
_OPTIONS_OK: dict[str, bool] = {}


def xla_compiler_options(platform: str | None = None, mode: str = 'train'
                         ) -> dict[str, str] | None:
  """`compiler_options` for jax.jit on `platform` (default: jax's default backend).

  CPU: CPU_COMPILER_OPTIONS for `mode='train'` (steps that take gradients),
  CPU_INFER_COMPILER_OPTIONS for `mode='infer'` (eval-mode forward passes),
  if this jaxlib accepts them (checked once with a tiny compile; an XLA
  without the option gets None, i.e. its defaults). Other platforms: None.
  """
  if mode not in MODES:
    raise ValueError(f'xla_compiler_options: mode={mode!r}, expected one of {MODES}')
  platform = platform or jax.default_backend()
  if platform != 'cpu' or os.environ.get(ENV_SWITCH, 'xla') == 'ynnpack':
    return None
  if platform not in _OPTIONS_OK:
    try:
      jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(
          jnp.zeros((2,), jnp.float32)).compile()
      _OPTIONS_OK[platform] = True
    except Exception:  # pylint: disable=broad-except
      _OPTIONS_OK[platform] = False
  if not _OPTIONS_OK[platform]:
    return None
  return dict(CPU_COMPILER_OPTIONS if mode == 'train' else CPU_INFER_COMPILER_OPTIONS)
_DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')

Padding = tuple[tuple[int, int], tuple[int, int]]


def check_impl(impl: str) -> str:
  """Returns `impl` if it is one of IMPLS, else raises ValueError naming config.model.conv_impl."""
  if impl not in IMPLS:
    raise ValueError(f'config.model.conv_impl={impl!r}: expected one of {IMPLS}')
  return impl


def _xla_conv(x, kernel, strides, padding, groups=1):
  return lax.conv_general_dilated(x, kernel, strides, padding,
                                  dimension_numbers=_DIMENSION_NUMBERS,
                                  feature_group_count=groups)


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


def _out_size(size: int, k: int, stride: int, pad: tuple[int, int]) -> int:
  return (size + pad[0] + pad[1] - k) // stride + 1


def kernel_gradient(x: jax.Array, dy: jax.Array, kernel_shape: Sequence[int],
                    strides: tuple[int, int], padding: Padding) -> jax.Array:
  """d(sum(conv(x, K) * dy)) / dK for a dense conv, as one im2col dot.

  Args:
    x: [B, H, W, C] conv input.
    dy: [B, H', W', O] cotangent of the conv output.
    kernel_shape: (kh, kw, C, O).
  Returns:
    [kh, kw, C, O] in x's dtype (accumulated in float32).
  """
  kh, kw, c, o = kernel_shape
  b, h, w, _ = x.shape
  (sh, sw), (ph, pw) = strides, padding
  ho, wo = dy.shape[1], dy.shape[2]
  xt = jnp.transpose(x, (0, 3, 1, 2))                        # [B, C, H, W]
  xt = jnp.pad(xt, ((0, 0), (0, 0), ph, pw))
  taps = [lax.slice(xt, (0, 0, i, j), (b, c, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1),
                    (1, 1, sh, sw)) for i in range(kh) for j in range(kw)]
  patches = jnp.stack(taps, axis=1).reshape(b, kh * kw * c, ho * wo)   # [B, k*k*C, H'W']
  dk = lax.dot_general(patches, dy.reshape(b, ho * wo, o),
                       (((2,), (1,)), ((0,), (0,))),
                       preferred_element_type=jnp.float32)            # [B, k*k*C, O]
  return jnp.sum(dk, axis=0).reshape(kh, kw, c, o).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _dense_conv(x, kernel, strides, padding):
  return _xla_conv(x, kernel, strides, padding)


def _dense_conv_fwd(x, kernel, strides, padding):
  return _xla_conv(x, kernel, strides, padding), (x, kernel)


def _dense_conv_bwd(strides, padding, residuals, dy):
  x, kernel = residuals
  _, vjp_x = jax.vjp(lambda x_: _xla_conv(x_, kernel, strides, padding), x)
  (dx,) = vjp_x(dy)
  dk = kernel_gradient(x, dy, kernel.shape, strides, padding).astype(kernel.dtype)
  return dx, dk


_dense_conv.defvjp(_dense_conv_fwd, _dense_conv_bwd)


@jax.custom_vjp
def _pointwise(x, kernel2d):
  b, h, w, c = x.shape
  return (x.reshape(-1, c) @ kernel2d).reshape(b, h, w, -1)


def _pointwise_fwd(x, kernel2d):
  return _pointwise(x, kernel2d), (x, kernel2d)


def _pointwise_bwd(residuals, dy):
  x, kernel2d = residuals
  b, h, w, c = x.shape
  o = dy.shape[-1]
  dx = (dy.reshape(-1, o) @ kernel2d.T).reshape(x.shape)
  # Batched over images then summed: splits the long contraction for threads.
  dk = lax.dot_general(x.reshape(b, h * w, c), dy.reshape(b, h * w, o),
                       (((1,), (1,)), ((0,), (0,))), preferred_element_type=jnp.float32)
  return dx.astype(x.dtype), jnp.sum(dk, axis=0).astype(kernel2d.dtype)


_pointwise.defvjp(_pointwise_fwd, _pointwise_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, *, strides: Sequence[int] = (1, 1),
           padding: Sequence[Sequence[int]] = ((0, 0), (0, 0)), groups: int = 1,
           impl: str = 'im2col') -> jax.Array:
  """lax.conv_general_dilated (NHWC / HWIO, explicit padding, groups) via `impl`.

  Args:
    x: [B, H, W, C_in].
    kernel: [kh, kw, C_in // groups, C_out]; same dtype as x.
    strides: (sh, sw).
    padding: ((top, bottom), (left, right)).
    groups: feature_group_count.
    impl: 'xla' (lax.conv) or 'im2col' (see module docstring).
  Returns:
    [B, H', W', C_out], H' = (H + top + bottom - kh) // sh + 1 (same for W').
  """
  check_impl(impl)
  strides = tuple(int(s) for s in strides)
  padding = tuple((int(p[0]), int(p[1])) for p in padding)
  kh, kw, cg, c_out = kernel.shape
  if x.ndim != 4 or x.shape[-1] != cg * groups:
    raise ValueError(f'conv2d: input {x.shape} does not match kernel {kernel.shape} '
                     f'with groups={groups}')
  if c_out % groups:
    raise ValueError(f'conv2d: C_out={c_out} is not divisible by groups={groups}')
  if impl == 'xla':
    return _xla_conv(x, kernel, strides, padding, groups)
  dense = block_diagonal_kernel(kernel, groups)
  if (kh, kw) == (1, 1) and strides == (1, 1) and padding == ((0, 0), (0, 0)):
    return _pointwise(x, dense[0, 0])
  return _dense_conv(x, dense, strides, padding)


class Conv(nn.Module):
  """Drop-in for `flax.linen.Conv` (NHWC, explicit padding) routed through `conv2d`.

  Same parameter names, shapes and initialisers as nn.Conv: `kernel`
  [kh, kw, C_in // groups, features] and `bias` [features] in `param_dtype`;
  inputs and parameters are cast to `dtype` for the computation.
  """
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: Padding = ((0, 0), (0, 0))
  feature_group_count: int = 1
  use_bias: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros
  impl: str = 'im2col'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c_in = x.shape[-1]
    if c_in % self.feature_group_count:
      raise ValueError(f'Conv {self.name}: C_in={c_in} is not divisible by '
                       f'feature_group_count={self.feature_group_count}')
    shape = (*self.kernel_size, c_in // self.feature_group_count, self.features)
    kernel = self.param('kernel', self.kernel_init, shape, self.param_dtype)
    y = conv2d(x.astype(self.dtype), kernel.astype(self.dtype), strides=self.strides,
               padding=self.padding, groups=self.feature_group_count, impl=self.impl)
    if self.use_bias:
      bias = self.param('bias', self.bias_init, (self.features,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y
