"""Padding / cropping and sliding-window inference."""
import numpy as np
import pytest

from cosnet_jax.inference import tiling


def test_pad_to_multiple_and_crop_back_round_trip():
  rng = np.random.default_rng(0)
  img = rng.random((333, 517)).astype(np.float32)
  padded, size = tiling.pad_to_multiple(img, 32)
  assert padded.shape == (352, 544) and size == (333, 517)
  assert padded.dtype == img.dtype
  np.testing.assert_array_equal(padded[:333, :517], img)
  assert not padded[333:].any() and not padded[:, 517:].any()
  np.testing.assert_array_equal(tiling.crop_back(padded, size), img)
  same, size = tiling.pad_to_multiple(img[:320, :512], 32)
  assert same.shape == (320, 512) and size == (320, 512)
  chan, _ = tiling.pad_to_multiple(np.ones((5, 7, 3)), 4, value=0.5)
  assert chan.shape == (8, 8, 3) and chan[7, 7, 0] == 0.5
  with pytest.raises(ValueError, match='multiple'):
    tiling.pad_to_multiple(img, 0)
  with pytest.raises(ValueError, match='crop'):
    tiling.crop_back(img, (400, 10))


@pytest.mark.parametrize('length,tile,overlap', [(517, 64, 16), (64, 64, 8),
                                                (1216, 304, 64), (100, 30, 0)])
def test_tile_starts_cover_with_overlap(length, tile, overlap):
  starts = tiling.tile_starts(length, tile, overlap)
  assert starts[0] == 0 and starts[-1] == length - tile
  assert np.all(np.diff(starts) <= tile - overlap)
  assert np.all(np.diff(starts) > 0)


def test_blend_window_positive_and_flat_inside():
  w = tiling.blend_window(64, 16)
  assert w.min() > 0 and w.max() == 1.0
  np.testing.assert_array_equal(w[16:48], 1.0)
  np.testing.assert_allclose(w, w[::-1])
  assert np.all(np.diff(w[:17]) > 0)


@pytest.mark.parametrize('shape', [(333, 517), (20, 50), (64, 64), (63, 130)])
def test_sliding_window_identity_reproduces_input(shape):
  rng = np.random.default_rng(1)
  img = rng.random(shape).astype(np.float32)
  calls = []

  def fn(x):
    calls.append(x.shape)
    return x

  out = tiling.sliding_window(fn, img, tile=64, overlap=16, batch=3)
  assert out.shape == shape and out.dtype == np.float32
  np.testing.assert_allclose(out, img, atol=1e-6)
  assert set(calls) == {(3, 64, 64, 1)}  # fixed batch shape, always


def test_sliding_window_pointwise_fn_and_constant():
  rng = np.random.default_rng(2)
  img = rng.random((150, 97)).astype(np.float32)
  out = tiling.sliding_window(lambda x: 2 * x + 1, img, 48, 20, 4)
  np.testing.assert_allclose(out, 2 * img + 1, atol=1e-5)
  ones = tiling.sliding_window(np.ones_like, img, 48, 20, 4)
  np.testing.assert_allclose(ones, 1.0, atol=1e-6)


def test_sliding_window_blends_disagreeing_tiles_smoothly():
  # Each tile outputs a different constant: the blend must stay within the
  # range of the tile values and vary gradually (no seam jumps of a full
  # step) across the overlap.
  counter = iter(range(1000))

  def fn(x):
    return np.stack([np.full(x.shape[1:], float(next(counter)), np.float32)
                     for _ in range(x.shape[0])])

  out = tiling.sliding_window(fn, np.zeros((40, 200), np.float32), 40, 32, 2)
  row = out[20]
  assert row.min() >= 0 and row.max() <= 20
  assert np.abs(np.diff(row)).max() < 0.5


def test_sliding_window_errors():
  img = np.zeros((40, 40), np.float32)
  with pytest.raises(ValueError, match='overlap'):
    tiling.sliding_window(lambda x: x, img, 16, 16, 1)
  with pytest.raises(ValueError, match='fn returned shape'):
    tiling.sliding_window(lambda x: x[..., 0], img, 16, 4, 2)
  with pytest.raises(ValueError, match=r'\[H, W\]'):
    tiling.sliding_window(lambda x: x, img[..., None], 16, 4, 2)
