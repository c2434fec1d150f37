"""Image / label reading: bit depths, colour, corrupt files, label values."""
import numpy as np
import pytest
from PIL import Image

from cosnet_jax.data import ImageReadError, LabelValueError, load_image
from cosnet_jax.data.image_io import read_image_u8, read_label


def test_8bit_formats_round_trip(tmp_path):
  a = np.arange(64 * 48, dtype=np.uint32).reshape(64, 48).astype(np.uint8)
  for ext in ('png', 'bmp', 'tif'):
    p = tmp_path / f'a.{ext}'
    Image.fromarray(a).save(p)
    x = load_image(p)
    assert x.dtype == np.float32 and x.shape == (64, 48)
    np.testing.assert_allclose(x, a / 255.0, atol=1e-7)
    np.testing.assert_array_equal(read_image_u8(p), a)


def test_16bit_is_scaled_by_65535(tmp_path):
  a = (np.arange(32 * 32).reshape(32, 32) * 60).astype(np.uint16)
  p = tmp_path / 'a16.png'
  Image.fromarray(a).save(p)
  np.testing.assert_allclose(load_image(p), a / 65535.0, atol=1e-6)
  pt = tmp_path / 'a16.tif'
  Image.fromarray(a).save(pt)
  np.testing.assert_allclose(load_image(pt), a / 65535.0, atol=1e-6)


def test_rgb_is_luminance_and_gray_rgb_is_exact(tmp_path):
  rgb = np.zeros((8, 8, 3), np.uint8)
  rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
  p = tmp_path / 'rgb.png'
  Image.fromarray(rgb).save(p)
  expected = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
  np.testing.assert_array_equal(read_image_u8(p), np.full((8, 8), expected, np.uint8))
  gray = np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8)[..., None], 3, axis=2)
  Image.fromarray(gray).save(p)
  np.testing.assert_array_equal(read_image_u8(p), gray[..., 0])
  rgba = np.concatenate([gray, np.full((8, 8, 1), 7, np.uint8)], axis=2)
  Image.fromarray(rgba).save(p)
  np.testing.assert_array_equal(read_image_u8(p), gray[..., 0])


def test_corrupt_truncated_missing_files_are_named(tmp_path):
  good = tmp_path / 'good.png'
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(good)
  data = good.read_bytes()
  trunc = tmp_path / 'trunc.png'
  trunc.write_bytes(data[: len(data) // 2])
  junk = tmp_path / 'junk.bmp'
  junk.write_bytes(b'not an image at all')
  empty = tmp_path / 'empty.tif'
  empty.write_bytes(b'')
  for p in (trunc, junk, empty, tmp_path / 'missing.png'):
    with pytest.raises(ImageReadError, match=p.name):
      load_image(p)


def test_labels_accepted_and_rejected(tmp_path):
  m = np.zeros((10, 10), np.uint8)
  m[2:5, 3:7] = 1
  for scale in (1, 255):
    p = tmp_path / f'l{scale}.png'
    Image.fromarray(m * np.uint8(scale)).save(p)
    np.testing.assert_array_equal(read_label(p), m)
  pb = tmp_path / 'bits.png'
  Image.fromarray(m.astype(bool)).save(pb)  # 1-bit image
  np.testing.assert_array_equal(read_label(pb), m)
  bad = m * np.uint8(255)
  bad[0, 0] = 128
  pbad = tmp_path / 'bad.png'
  Image.fromarray(bad).save(pbad)
  with pytest.raises(LabelValueError, match=r'bad\.png.*0, 128, 255'):
    read_label(pbad)
  mixed = m.copy()
  mixed[0, 0] = 255
  pmix = tmp_path / 'mixed.png'
  Image.fromarray(mixed).save(pmix)
  with pytest.raises(LabelValueError, match=r'0, 1, 255'):
    read_label(pmix)
