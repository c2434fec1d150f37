"""CLAHE (cv2 semantics) and the preprocessing transform."""

import numpy as np

from cosnet_jax.data import clahe as clahe_lib
from cosnet_jax.data import synthetic
from cosnet_jax.config import data_config as default_data_config
from cosnet_jax.data.preprocess import preprocess

from conftest import SHARED_DATA


def _octa_like(size=304):
  return synthetic.generate_octa(synthetic.example_rng(3, 0, 0), size)['image']


def test_constant_image_hand_worked():
  # 304x304, 8x8 tiles of 38x38 = 1444 px. clip = int(2 * 1444 / 256) = 11.
  # Bin 100 holds 1444 -> clipped 1433 -> +5 per bin, residual 153 -> +1 to bins
  # 0..152 (step 256 // 153 = 1). cdf(100) = 100 * 6 + (11 + 5 + 1) = 617;
  # 617 * 255 / 1444 = 108.96 -> 109 in every tile, hence everywhere.
  out = clahe_lib.clahe(np.full((304, 304), 100, np.uint8), 2.0, 8)
  assert out.dtype == np.uint8 and out.shape == (304, 304)
  assert np.all(out == 109)


def test_single_tile_without_clipping_is_global_equalisation():
  img = _octa_like(64)
  out = clahe_lib.clahe(img, clip_limit=0.0, tile_grid=1)
  cdf = np.cumsum(np.bincount(img.ravel(), minlength=256))
  expected = np.rint(cdf.astype(np.float32) * np.float32(255.0 / img.size)).astype(np.uint8)
  np.testing.assert_array_equal(out, expected[img])


def test_matches_skimage_loosely():
  from skimage.exposure import equalize_adapthist
  path = SHARED_DATA / 'OCTA500_3M' / 'train' / 'image' / '10301.bmp'
  if path.exists():
    from cosnet_jax.data.image_io import read_image_u8
    img = read_image_u8(path)
  else:
    img = _octa_like()
  ours = clahe_lib.clahe(img, 2.0, 8).astype(np.float64)
  sk = equalize_adapthist(img, kernel_size=img.shape[0] // 8, clip_limit=2.0 / 256, nbins=256)
  assert np.corrcoef(ours.ravel(), sk.ravel())[0, 1] > 0.97


def test_clip_limit_controls_contrast_and_odd_sizes_work():
  img = _octa_like(96)[:90, :83]  # not a multiple of the tile grid (cv2 pads)
  lo = clahe_lib.clahe(img, 1.0, 8)
  hi = clahe_lib.clahe(img, 4.0, 8)
  assert lo.shape == img.shape == hi.shape
  assert hi.astype(float).std() > lo.astype(float).std()
  # Larger clip limit -> closer to plain AHE; monotone in the input within a tile.
  tile = img[:11, :10].ravel()
  order = np.argsort(tile, kind='stable')
  assert np.all(np.diff(clahe_lib.clahe(img, 2.0, 1)[:11, :10].ravel()[order].astype(int)) >= 0)


def test_preprocess_on_off_and_range():
  cfg = default_data_config()
  x = _octa_like(64).astype(np.float32) / 255
  on = preprocess(x, cfg)
  assert on.dtype == np.float32 and on.min() >= 0 and on.max() <= 1
  np.testing.assert_array_equal(on, clahe_lib.clahe(_octa_like(64), 2.0, 8) / np.float32(255))
  cfg.clahe = False
  np.testing.assert_allclose(preprocess(x, cfg), x, atol=1e-6)
  cfg.clahe = True
  cfg.clahe_tile_grid = 4
  cfg.clahe_clip_limit = 3.0
  np.testing.assert_array_equal(preprocess(x, cfg) * 255,
                                clahe_lib.clahe(_octa_like(64), 3.0, 4).astype(np.float32))
