"""Test-time augmentation against NumPy references: the valid-region
mirror and one-pixel shift, the averaged maps of a batch and of a whole
image, and the eval runner's use of them on a folder with padding (a fake,
non-symmetric step)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from cosnet_jax import sharding

from cosnet_jax.data import testing as data_testing
from cosnet_jax.inference import runner
from cosnet_jax.inference import tta
from cosnet_jax import config as config_lib


def _ramp_predict(image):
  """A map that is not mirror-symmetric: each pixel times (1 + its row + 2 col)."""
  b, h, w, _ = image.shape
  ramp = 1.0 + np.arange(h)[:, None] + 2.0 * np.arange(w)[None, :]
  return {'coarse': image * ramp[None, :, :, None].astype(np.float32),
          'other': image + 1.0}


def test_flip_valid_mirrors_only_the_valid_region_and_is_its_own_inverse():
  rng = np.random.default_rng(0)
  x = rng.random((3, 8, 10, 1)).astype(np.float32)
  heights, widths = np.array([8, 5, 0]), np.array([10, 7, 0])
  for fy, fx, _, _ in tta.MODES['flips']:
    y = tta.flip_valid(x, heights, widths, fy, fx)
    np.testing.assert_array_equal(tta.flip_valid(y, heights, widths, fy, fx), x)
    for i, (h, w) in enumerate(zip(heights, widths)):
      region = x[i, :h, :w]
      if fy:
        region = region[::-1]
      if fx:
        region = region[:, ::-1]
      np.testing.assert_array_equal(y[i, :h, :w], region)
      outside = np.ones((8, 10), bool)
      outside[:h, :w] = False
      np.testing.assert_array_equal(y[i][outside], x[i][outside])
  assert tta.flip_valid(x, heights, widths, False, False) is not x


def test_average_batch_matches_a_hand_written_reference():
  rng = np.random.default_rng(1)
  image = rng.random((2, 6, 9, 1)).astype(np.float32)
  heights, widths = np.array([6, 4]), np.array([9, 5])
  got = tta.average_batch(_ramp_predict, image, heights, widths, 'flips',
                          ('coarse', 'other'))
  for i, (h, w) in enumerate(zip(heights, widths)):
    img = image[i, :h, :w, 0].astype(np.float64)
    ramp = 1.0 + np.arange(6)[:, None] + 2.0 * np.arange(9)[None, :]
    ref = np.zeros((h, w))
    for fy in (False, True):
      for fx in (False, True):
        sl = (slice(None, None, -1 if fy else 1), slice(None, None, -1 if fx else 1))
        ref += (img[sl] * ramp[:h, :w])[sl]          # predict the mirror, mirror back
    np.testing.assert_allclose(got['coarse'][i, :h, :w, 0], ref / 4, rtol=1e-6)
    # A pointwise map is mirror-equivariant: the mean is the plain pass.
    np.testing.assert_allclose(got['other'][i, :h, :w, 0], img + 1, rtol=1e-6)
  plain = tta.average_batch(_ramp_predict, image, heights, widths, 'none', ('coarse',))
  np.testing.assert_array_equal(plain['coarse'], _ramp_predict(image)['coarse'])
  two = tta.average_batch(_ramp_predict, image, heights, widths, 'hflip', ('coarse',))
  ref = (_ramp_predict(image)['coarse'] + tta.flip_valid(
      _ramp_predict(tta.flip_valid(image, heights, widths, False, True))['coarse'],
      heights, widths, False, True)) / 2
  np.testing.assert_allclose(two['coarse'], ref, rtol=1e-6)


def test_average_image_matches_the_reference_and_checks_the_mode():
  rng = np.random.default_rng(2)
  img = rng.random((5, 7)).astype(np.float32)
  ramp = 1.0 + np.arange(5)[:, None] + 2.0 * np.arange(7)[None, :]
  fn = lambda x: x * ramp
  ref = np.mean([fn(img[::sy, ::sx])[::sy, ::sx] for sy in (1, -1) for sx in (1, -1)],
                axis=0)
  np.testing.assert_allclose(tta.average_image(fn, img, 'flips'), ref, rtol=1e-6)
  np.testing.assert_allclose(tta.average_image(fn, img, 'none'), fn(img), rtol=1e-6)
  with pytest.raises(ValueError, match="eval.tta='rot90'"):
    tta.average_image(fn, img, 'rot90')


def test_predict_split_averages_mirrors_of_padded_images(tmp_path):
  root = data_testing.write_flat(str(tmp_path / 'data'), splits=(('test', 3),), size=48)
  # One image of another size: the batch is padded to 64 x 64 with two
  # different valid regions.
  for sub in ('image', 'label'):
    path = tmp_path / 'data' / 'test' / sub / 'test1.png'
    Image.fromarray(np.asarray(Image.open(path))[:40, :45]).save(path)
  cfg = config_lib.data_config()
  cfg.name, cfg.root, cfg.cache_dir = 'octa_folder', root, str(tmp_path / 'tfds')
  mesh = sharding.make_mesh(jax.local_devices())
  h_ramp = jnp.arange(64, dtype=jnp.float32)
  step = jax.jit(lambda batch: {'coarse': batch['image'] * (1.0 + h_ramp[:, None, None]
                                                            + 2.0 * h_ramp[None, :, None])})
  bs = sharding.eval_batch_size(4)
  plain = runner.split_maps(step, cfg, 'test', mesh, batch_size=bs, outputs=('coarse',))
  flips = runner.split_maps(step, cfg, 'test', mesh, batch_size=bs, outputs=('coarse',),
                               tta='flips')
  assert [r['id'] for r in flips] == [r['id'] for r in plain]
  assert {r['coarse'].shape for r in flips} == {(48, 48), (40, 45)}
  for r in flips:
    img = r['image'].astype(np.float64)
    h, w = img.shape
    ramp = 1.0 + np.arange(h)[:, None] + 2.0 * np.arange(w)[None, :]
    ref = np.mean([(img[::sy, ::sx] * ramp)[::sy, ::sx] for sy in (1, -1) for sx in (1, -1)],
                  axis=0)
    np.testing.assert_allclose(r['coarse'], ref, rtol=1e-5)
  # Shifts move only each image's valid region, so the padding never enters it.
  moved = runner.split_maps(step, cfg, 'test', mesh, batch_size=bs, outputs=('coarse',),
                               tta='flips_shifts')
  for r in moved:
    img = r['image'].astype(np.float64)
    h, w = img.shape
    ramp = 1.0 + np.arange(h)[:, None] + 2.0 * np.arange(w)[None, :]
    ref = np.mean([_moved(_moved(img[::sy, ::sx], dy, dx) * ramp, dy, dx, back=True)[::sy, ::sx]
                   for sy in (1, -1) for sx in (1, -1) for dy in (0, 1) for dx in (0, 1)],
                  axis=0)
    np.testing.assert_allclose(r['coarse'], ref, rtol=1e-5)
  with pytest.raises(ValueError, match='eval.tta'):
    runner.split_maps(step, cfg, 'test', mesh, batch_size=bs, outputs=('coarse',),
                         tta='all')


def _moved(region, dy, dx, back=False):
  """Index-formula reference of a shift: out[r, c] = region[r -+ dy, c -+ dx],
  clamped to the region (edge padding)."""
  h, w = region.shape[:2]
  rows, cols = np.arange(h), np.arange(w)
  if back:
    rows, cols = np.minimum(rows + dy, h - 1), np.minimum(cols + dx, w - 1)
  else:
    rows, cols = np.maximum(rows - dy, 0), np.maximum(cols - dx, 0)
  return region[rows][:, cols]


def test_shift_moves_the_valid_region_with_edge_padding_and_back():
  rng = np.random.default_rng(3)
  x = rng.random((3, 8, 10, 1)).astype(np.float32)
  heights, widths = np.array([8, 5, 0]), np.array([10, 7, 0])
  for dy, dx in ((0, 1), (1, 0), (1, 1), (2, 3)):
    y = tta.shift_valid(x, heights, widths, dy, dx)
    z = tta.shift_valid(y, heights, widths, dy, dx, back=True)
    for i, (h, w) in enumerate(zip(heights, widths)):
      np.testing.assert_array_equal(y[i, :h, :w], _moved(x[i, :h, :w], dy, dx))
      np.testing.assert_array_equal(
          tta.shift_valid(x, heights, widths, dy, dx, back=True)[i, :h, :w],
          _moved(x[i, :h, :w], dy, dx, back=True))
      # Moving back restores all but the last dy rows / dx columns.
      np.testing.assert_array_equal(z[i, :h - dy, :w - dx], x[i, :h - dy, :w - dx])
      outside = np.ones((8, 10), bool)
      outside[:h, :w] = False
      np.testing.assert_array_equal(y[i][outside], x[i][outside])
  # A region no taller than the shift is not moved along that axis.
  tiny = x[0, :1, :4]
  np.testing.assert_array_equal(tta.shift_region(tiny, 1, 1), _moved(tiny, 0, 1))
  assert tta.shift_valid(x, heights, widths, 0, 0) is not x


def test_flips_shifts_batch_and_image_match_the_reference():
  rng = np.random.default_rng(4)
  image = rng.random((2, 6, 9, 1)).astype(np.float32)
  heights, widths = np.array([6, 4]), np.array([9, 5])
  passes = tta.check_mode('flips_shifts')
  assert len(passes) == 16 and len(set(passes)) == 16 and passes[0] == (False, False, 0, 0)
  got = tta.average_batch(_ramp_predict, image, heights, widths, 'flips_shifts',
                          ('coarse', 'other'))
  ramp = 1.0 + np.arange(6)[:, None] + 2.0 * np.arange(9)[None, :]
  for i, (h, w) in enumerate(zip(heights, widths)):
    img = image[i, :h, :w, 0].astype(np.float64)
    ref = np.zeros((h, w))
    for sy in (1, -1):
      for sx in (1, -1):
        for dy in (0, 1):
          for dx in (0, 1):
            seen = _moved(img[::sy, ::sx], dy, dx)          # mirror, then move
            ref += _moved(seen * ramp[:h, :w], dy, dx, back=True)[::sy, ::sx]
    np.testing.assert_allclose(got['coarse'][i, :h, :w, 0], ref / 16, rtol=1e-6)
    # A pointwise map comes back as the plain pass: exactly away from the
    # far edges, and every pixel is the pass's value at it or an edge neighbour.
    other = got['other'][i, :h, :w, 0]
    np.testing.assert_allclose(other[1:-1, 1:-1], img[1:-1, 1:-1] + 1, rtol=1e-6)
    # The whole-image path (Segmenter.probabilities) agrees with the batch path.
    whole = tta.average_image(lambda x: x * ramp[:h, :w], image[i, :h, :w, 0], 'flips_shifts')
    np.testing.assert_allclose(whole, ref / 16, rtol=1e-5)
