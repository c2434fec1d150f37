"""models/pooling.py: the stem's 3x3 max pool against NumPy and flax, with its gradient."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cosnet_jax.models.pooling import max_pool_3x3


def _numpy_pool_and_grad(x, dy, stride):
  """Max pool (pad 1, -inf) and its gradient: each output's cotangent to the
  first maximum of its window in row-major order (PyTorch / XLA's rule)."""
  b, h, w, c = x.shape
  ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
  xp = np.full((b, h + 2, w + 2, c), -np.inf, x.dtype)
  xp[:, 1:-1, 1:-1] = x
  y = np.empty((b, ho, wo, c), x.dtype)
  dxp = np.zeros_like(xp)
  for n in range(b):
    for r in range(ho):
      for q in range(wo):
        for ch in range(c):
          win = xp[n, r * stride:r * stride + 3, q * stride:q * stride + 3, ch].ravel()
          k = int(np.argmax(win))          # first maximum
          y[n, r, q, ch] = win[k]
          dxp[n, r * stride + k // 3, q * stride + k % 3, ch] += dy[n, r, q, ch]
  return y, dxp[:, 1:-1, 1:-1]


@pytest.mark.parametrize('shape,stride', [((2, 9, 8, 3), 2), ((1, 8, 8, 2), 2),
                                          ((2, 7, 6, 3), 1)])
def test_matches_numpy_with_ties(shape, stride):
  rng = np.random.default_rng(0)
  # A ReLU output rounded to a few levels: many tied maxima, as in the stem.
  x = np.maximum(np.round(rng.standard_normal(shape) * 2) / 2, 0).astype(np.float32)
  ho, wo = (shape[1] - 1) // stride + 1, (shape[2] - 1) // stride + 1
  dy = rng.standard_normal((shape[0], ho, wo, shape[3])).astype(np.float32)
  y_ref, dx_ref = _numpy_pool_and_grad(x, dy, stride)
  assert np.mean(x == 0) > 0.3
  y, vjp = jax.vjp(lambda a: max_pool_3x3(a, stride), jnp.asarray(x))
  np.testing.assert_array_equal(y, y_ref)
  np.testing.assert_allclose(vjp(jnp.asarray(dy))[0], dx_ref, rtol=1e-6, atol=1e-6)


def test_same_value_and_gradient_as_flax_max_pool_jitted():
  x = jax.nn.relu(jax.random.normal(jax.random.key(1), (2, 16, 16, 8)))
  dy = jax.random.normal(jax.random.key(2), (2, 8, 8, 8))
  ref = lambda a: nn.max_pool(a, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
  ours = lambda a: max_pool_3x3(a, 2)
  run = jax.jit(lambda f, a, g: (f(a), jax.vjp(f, a)[1](g)[0]), static_argnums=0)
  (y, dx), (y_ref, dx_ref) = run(ours, x, dy), run(ref, x, dy)
  np.testing.assert_array_equal(y, y_ref)
  np.testing.assert_allclose(dx, dx_ref, rtol=1e-6, atol=1e-6)
  # What it is for: no reduce_window / select_and_scatter in the compiled program.
  hlo = jax.jit(lambda a, g: jax.vjp(ours, a)[1](g)[0]).lower(x, dy).compile().as_text()
  assert 'select-and-scatter' not in hlo and 'reduce-window' not in hlo


def test_bfloat16_and_bad_stride():
  x = jax.random.normal(jax.random.key(3), (1, 8, 8, 4)).astype(jnp.bfloat16)
  y = max_pool_3x3(x, 2)
  assert y.dtype == jnp.bfloat16
  np.testing.assert_array_equal(
      y, nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1))))
  with pytest.raises(ValueError, match='stride=3'):
    max_pool_3x3(x, 3)
