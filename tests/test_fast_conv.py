"""fast_conv: conv2d(impl='im2col') == lax.conv (values and gradients), vs NumPy."""
from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cosnet_jax.models import fast_conv


def _numpy_conv(x, k, stride, pad, groups):
  """Direct NumPy reference. x [B,H,W,C], k [kh,kw,C/g,O] -> [B,H',W',O]."""
  b, h, w, c = x.shape
  kh, kw, cg, o = k.shape
  og = o // groups
  xp = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
  ho = (h + sum(pad[0]) - kh) // stride + 1
  wo = (w + sum(pad[1]) - kw) // stride + 1
  y = np.zeros((b, ho, wo, o), np.float64)
  for g in range(groups):
    xs = xp[..., g * cg:(g + 1) * cg]
    ks = k[..., g * og:(g + 1) * og]
    for i in range(kh):
      for j in range(kw):
        win = xs[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
        y[..., g * og:(g + 1) * og] += np.einsum('bhwc,co->bhwo', win, ks[i, j])
  return y


CASES = [  # (B, H, W, C_in, C_out, k, stride, groups)
    (2, 8, 8, 4, 6, 3, 1, 1),
    (2, 8, 6, 4, 8, 3, 1, 4),      # grouped 3x3 (decoder split attention)
    (2, 8, 8, 6, 4, 3, 2, 1),      # strided stem conv
    (1, 6, 6, 8, 8, 3, 2, 2),      # strided + grouped
    (2, 5, 7, 6, 4, 1, 1, 1),      # pointwise
    (2, 4, 4, 8, 12, 1, 1, 2),     # grouped pointwise (split-attention fc)
    (1, 7, 7, 3, 5, 5, 1, 1),      # 5x5
]


def _arrays(case, seed=0):
  b, h, w, ci, co, k, s, g = case
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((b, h, w, ci)).astype(np.float32)
  kern = rng.standard_normal((k, k, ci // g, co)).astype(np.float32)
  pad = ((k // 2, k // 2), (k // 2, k // 2))
  return x, kern, s, pad, g


@pytest.mark.parametrize('case', CASES)
def test_forward_matches_numpy(case):
  x, kern, s, pad, g = _arrays(case)
  ref = _numpy_conv(x.astype(np.float64), kern.astype(np.float64), s, pad, g)
  for impl in fast_conv.IMPLS:
    y = fast_conv.conv2d(jnp.asarray(x), jnp.asarray(kern), strides=(s, s), padding=pad,
                         groups=g, impl=impl)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-5, err_msg=impl)


@pytest.mark.parametrize('case', CASES)
def test_gradients_match_lax(case):
  x, kern, s, pad, g = _arrays(case, seed=1)

  def loss(impl):
    def f(x, k):
      y = fast_conv.conv2d(x, k, strides=(s, s), padding=pad, groups=g, impl=impl)
      return jnp.sum(jnp.sin(y))   # non-uniform cotangent
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

  (v_ref, (dx_ref, dk_ref)) = loss('xla')(x, kern)
  (v, (dx, dk)) = loss('im2col')(x, kern)
  np.testing.assert_allclose(v, v_ref, rtol=1e-5)
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(dk, dk_ref, rtol=1e-4, atol=1e-4)


def test_kernel_gradient_matches_numpy():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((2, 9, 8, 3))
  dy = rng.standard_normal((2, 5, 4, 4))        # stride 2, pad 1 -> 5x4
  pad = ((1, 1), (1, 1))
  xp = np.pad(x, ((0, 0), *pad, (0, 0)))
  ref = np.zeros((3, 3, 3, 4))
  for i in range(3):
    for j in range(3):
      ref[i, j] = np.einsum('bhwc,bhwo->co', xp[:, i:i + 9:2, j:j + 7:2], dy)
  got = fast_conv.kernel_gradient(jnp.asarray(x, jnp.float32), jnp.asarray(dy, jnp.float32),
                                  (3, 3, 3, 4), (2, 2), pad)
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-5)


def test_block_diagonal_kernel():
  k = np.arange(2 * 3 * 12, dtype=np.float32).reshape(1, 2, 3, 12)   # C_in/g=3, 4 groups
  dense = np.asarray(fast_conv.block_diagonal_kernel(jnp.asarray(k), 4))
  assert dense.shape == (1, 2, 12, 12)
  for gi in range(4):
    for go in range(4):
      block = dense[:, :, gi * 3:(gi + 1) * 3, go * 3:(go + 1) * 3]
      expect = k[..., go * 3:(go + 1) * 3] if gi == go else 0 * block
      np.testing.assert_array_equal(block, expect)


def test_module_matches_flax_conv():
  x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 8, 8, 8)), jnp.float32)
  kw = dict(features=8, kernel_size=(3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
            feature_group_count=2, use_bias=True)
  ref = nn.Conv(**kw)
  variables = ref.init(jax.random.key(0), x)
  ours = fast_conv.Conv(**kw, impl='im2col')
  ours_vars = ours.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, ours_vars) == jax.tree.map(jnp.shape, variables)
  np.testing.assert_allclose(ours.apply(variables, x), ref.apply(variables, x),
                             rtol=1e-5, atol=1e-5)


def test_bfloat16_compute():
  x, kern, s, pad, g = _arrays(CASES[1])
  ref = fast_conv.conv2d(jnp.asarray(x), jnp.asarray(kern), padding=pad, groups=g, impl='xla')

  def f(x, k):
    return jnp.sum(fast_conv.conv2d(x, k, padding=pad, groups=g, impl='im2col')
                   .astype(jnp.float32))
  xb, kb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(kern, jnp.bfloat16)
  y = fast_conv.conv2d(xb, kb, padding=pad, groups=g, impl='im2col')
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y, np.float32), ref, rtol=0.05, atol=0.1)
  dx, dk = jax.grad(f, argnums=(0, 1))(xb, kb)
  assert dx.dtype == jnp.bfloat16 and dk.dtype == jnp.bfloat16


def test_bad_arguments():
  x = jnp.zeros((1, 4, 4, 6))
  with pytest.raises(ValueError, match='config.model.conv_impl'):
    fast_conv.conv2d(x, jnp.zeros((3, 3, 6, 6)), impl='cudnn')
  with pytest.raises(ValueError, match='groups=4'):
    fast_conv.conv2d(x, jnp.zeros((3, 3, 6, 8)), groups=4)


def _ynn_fused_ops(hlo_text: str) -> set:
  """Op names inside the fused computations that XLA:CPU hands to YNNPACK."""
  bodies = dict(re.findall(r'^%?(\S+) [^\n]*\{\n(.*?)\n\}', hlo_text, re.M | re.S))
  ops = set()
  for call in re.findall(r'calls=%([^,\s]+),[^\n]*backend_config=\{"fusion_config":'
                         r'\{"kind":"__ynn_fusion"', hlo_text):
    ops |= set(re.findall(r'= \S+ (\w+)\(', bodies.get(call, '')))
  return ops


def test_cpu_compiler_options_keep_convs_off_ynnpack():
  assert fast_conv.xla_compiler_options('gpu') is None
  opts = fast_conv.xla_compiler_options('cpu')
  if jax.default_backend() != 'cpu' or opts is None:
    pytest.skip('XLA:CPU without the YNN fusion option')
  assert opts == fast_conv.CPU_COMPILER_OPTIONS
  x, kern, s, pad, g = _arrays(CASES[0])

  def f(x, k):
    y = fast_conv.conv2d(x, k, padding=pad, impl='xla')
    return jnp.sum(y * y), y @ jnp.ones((y.shape[-1], 8))      # conv, reduce, dot
  fn = jax.value_and_grad(lambda x, k: f(x, k)[0], argnums=(0, 1))
  ours = jax.jit(fn, compiler_options=opts).lower(x, kern).compile()
  # YNNPACK takes a convolution only from about this size up (compiled, not run):
  big = [jnp.zeros((8, 96, 96, 32)), jnp.zeros((3, 3, 32, 32))]
  conv = lambda x, k: fast_conv.conv2d(x, k, padding=((1, 1), (1, 1)), impl='xla')
  assert 'convolution' in _ynn_fused_ops(jax.jit(conv).lower(*big).compile().as_text())
  assert 'convolution' not in _ynn_fused_ops(
      jax.jit(conv, compiler_options=opts).lower(*big).compile().as_text())
  (v, (dx, dk)), (v_ref, (dx_ref, dk_ref)) = ours(x, kern), jax.jit(fn)(x, kern)
  np.testing.assert_allclose(v, v_ref, rtol=1e-6)
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dk, dk_ref, rtol=1e-5, atol=1e-5)


def test_cpu_infer_options_leave_reductions_to_xla():
  """mode='infer' (eval-mode forward passes): YNNPACK keeps the dots but not
  the reductions or convolutions; same numbers as XLA's defaults."""
  assert fast_conv.xla_compiler_options('gpu', mode='infer') is None
  with pytest.raises(ValueError, match='mode'):
    fast_conv.xla_compiler_options('cpu', mode='eval')
  opts = fast_conv.xla_compiler_options('cpu', mode='infer')
  if jax.default_backend() != 'cpu' or opts is None:
    pytest.skip('XLA:CPU without the YNN fusion option')
  assert opts == fast_conv.CPU_INFER_COMPILER_OPTIONS
  # (YNNPACK takes a reduction from about 32x32x16 up; smaller ones stay on XLA)
  x, kern, s, pad, g = _arrays((1, 32, 32, 16, 16, 3, 1, 1))

  def f(x, k):   # a forward of the model's kinds: conv, pooled attention, dot
    y = jax.nn.relu(fast_conv.conv2d(x, k, padding=pad, impl='xla'))
    att = jax.nn.softmax(jnp.mean(y, axis=(1, 2), keepdims=True), axis=-1)
    return (y * att).reshape(-1, y.shape[-1]) @ jnp.ones((y.shape[-1], 8))
  train_ops = _ynn_fused_ops(jax.jit(f, compiler_options=fast_conv.xla_compiler_options(
      'cpu')).lower(x, kern).compile().as_text())
  ours = jax.jit(f, compiler_options=opts).lower(x, kern).compile()
  infer_ops = _ynn_fused_ops(ours.as_text())
  assert 'reduce' in train_ops            # the train options do fuse reductions
  assert 'reduce' not in infer_ops and 'convolution' not in infer_ops
  assert 'dot' in infer_ops
  np.testing.assert_allclose(ours(x, kern), jax.jit(f)(x, kern), rtol=1e-5, atol=1e-6)


# The whole train step with and without these options:
# tests/test_train_step.py::test_cpu_conv_kernels_give_the_same_step.
