"""Shift-robust resampling (model.blur_pool, model.upsample='bilinear') vs NumPy."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from cosnet_jax import models
from cosnet_jax.models.antialias import UpResize, bilinear_upsample2x, blur_downsample
from cosnet_jax import config as config_lib

KEY = jax.random.key(0)


def _np_blur_down(x):
  """[B, H, W, C]: 3x3 binomial filter (reflect padding), every second pixel."""
  k = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='reflect')
  b, h, w, c = x.shape
  out = np.zeros((b, h // 2, w // 2, c))
  for i in range(h // 2):
    for j in range(w // 2):
      win = xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]
      out[:, i, j] = np.einsum('bpqc,pq->bc', win, k)
  return out


def _np_bilinear_up(x):
  """[B, H, W, C] -> [B, 2H, 2W, C], half-pixel centres, clamped at the edges."""
  b, h, w, c = x.shape

  def coords(n):
    src = (np.arange(2 * n) + 0.5) / 2 - 0.5
    src = np.clip(src, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    return lo, hi, src - lo

  ylo, yhi, fy = coords(h)
  xlo, xhi, fx = coords(w)
  rows = x[:, ylo] * (1 - fy)[None, :, None, None] + x[:, yhi] * fy[None, :, None, None]
  return rows[:, :, xlo] * (1 - fx)[None, None, :, None] + rows[:, :, xhi] * fx[None, None, :, None]


def test_blur_downsample_matches_numpy():
  x = np.random.default_rng(0).standard_normal((2, 8, 12, 3)).astype(np.float32)
  np.testing.assert_allclose(blur_downsample(jnp.asarray(x)), _np_blur_down(x), atol=1e-6)
  # A constant stays constant (the filter sums to one, reflect padding).
  np.testing.assert_allclose(blur_downsample(jnp.full((1, 4, 4, 1), 3.0)), 3.0)
  with pytest.raises(ValueError, match='even size'):
    blur_downsample(jnp.zeros((1, 5, 4, 1)))


def test_bilinear_upsample_matches_numpy_and_jax_image_resize():
  x = np.random.default_rng(1).standard_normal((2, 5, 6, 3)).astype(np.float32)
  got = bilinear_upsample2x(jnp.asarray(x))
  np.testing.assert_allclose(got, _np_bilinear_up(x), atol=1e-6)
  np.testing.assert_allclose(got, jax.image.resize(x, (2, 10, 12, 3), 'linear'), atol=1e-6)


def test_up_resize_is_a_1x1_conv_then_bilinear_and_has_no_checkerboard():
  x = np.random.default_rng(2).standard_normal((1, 4, 4, 3)).astype(np.float32)
  mod = UpResize(5)
  variables = mod.init(KEY, jnp.asarray(x))
  kernel = np.asarray(variables['params']['kernel'])
  assert kernel.shape == (1, 1, 3, 5)
  bias = np.linspace(-1, 1, 5).astype(np.float32)
  variables = {'params': {'kernel': kernel, 'bias': bias}}
  want = _np_bilinear_up(np.einsum('bhwc,co->bhwo', x, kernel[0, 0]) + bias)
  np.testing.assert_allclose(mod.apply(variables, jnp.asarray(x)), want, atol=1e-5)
  # A constant input gives a constant output (a 2x2 transposed conv gives a
  # 2x2-periodic pattern instead).
  const = mod.apply(variables, jnp.ones((1, 4, 4, 3)))
  np.testing.assert_allclose(const, np.broadcast_to(const[:, :1, :1], const.shape), atol=1e-6)


def _params(**overrides):
  cfg = config_lib.model_config('cosnet_tiny')
  cfg.update(overrides)
  model = models.build_cosnet(cfg)
  x = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(KEY, x), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, with_embeddings=True), variables,
                       jax.ShapeDtypeStruct((2, 64, 64, 1), jnp.float32))
  assert out['coarse'].shape == (2, 64, 64, 1) and out['embed_thick'].shape[:3] == (2, 64, 64)
  return {'/'.join(k): v.shape for k, v in
          traverse_util.flatten_dict(variables['params']).items()}


def test_flags_change_only_the_parameters_they_should():
  plain = _params()
  # blur_pool: same parameter tree (ImageNet encoder weights still load).
  assert _params(blur_pool=True) == plain
  # bilinear: each up-sampler's kernel becomes [1, 1, C, F]; nothing else changes.
  bil = _params(upsample='bilinear')
  assert bil.keys() == plain.keys()
  changed = {k for k in plain if plain[k] != bil[k]}
  assert changed and all('/up' in k and k.endswith('kernel') for k in changed)
  assert all(bil[k][:2] == (1, 1) and plain[k][:2] == (2, 2) for k in changed)
  with pytest.raises(ValueError, match='config.model.upsample'):
    _params(upsample='nearest')
  bad = dict(config_lib.model_config('cosnet_tiny'), blur_pool='yes')
  with pytest.raises(ValueError, match='config.model.blur_pool'):
    models.resolve_model_config(bad)


def test_blur_pool_encoder_runs_the_stem_at_full_resolution():
  """conv1_0 runs at stride 1 (its [1, 64, 64, stem_width] output exists only
  then; a stride-2 stem gives 32x32), and the five feature maps keep the
  plain encoder's sizes H/2 .. H/32."""
  cfg = config_lib.model_config('cosnet_tiny')
  cfg.blur_pool = True
  spec = models.resolve_model_config(cfg)
  enc = models.cosnet.encoder_from_spec(spec)
  x = jnp.asarray(np.random.default_rng(3).random((1, 64, 64, 3)), jnp.float32)
  variables = enc.init(KEY, x, False)
  jaxpr = str(jax.make_jaxpr(lambda v, x: enc.apply(v, x, False))(variables, x))
  # The first conv keeps the full 64x64 grid.
  assert 'f32[1,64,64,8]' in jaxpr
  feats = enc.apply(variables, x, False)
  assert [f.shape[1] for f in feats] == [32, 16, 8, 4, 2]
