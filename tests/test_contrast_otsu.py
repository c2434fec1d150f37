"""otsu_threshold against skimage.filters.threshold_otsu on uint8(p*255)."""
import numpy as np
import pytest
from skimage.filters import threshold_otsu

from cosnet_jax.contrast import otsu_threshold


def _skimage_threshold(p, valid=None):
  q = (p * np.float32(255)).astype(np.uint8)
  if valid is not None:
    q = q[valid]
  return int(threshold_otsu(q))


def _maps(rng, n, size):
  uniform = rng.random((n, size, size), dtype=np.float32)
  # Bimodal: background near 0.2, vessels near 0.8.
  fg = rng.random((n, size, size)) < 0.3
  bimodal = np.where(fg, rng.beta(8, 2, fg.shape), rng.beta(2, 8, fg.shape))
  skewed = rng.random((n, size, size), dtype=np.float32) ** 4
  return [uniform, bimodal.astype(np.float32), skewed]


@pytest.mark.parametrize('with_valid', [False, True])
def test_matches_skimage(with_valid):
  rng = np.random.default_rng(0)
  n, size = 6, 40
  exact = total = 0
  for p in _maps(rng, n, size):
    valid = None
    if with_valid:
      valid = np.zeros((n, size, size), bool)
      valid[:, :31, :27] = True   # padding at bottom / right
      p = np.where(valid, p, 0.0).astype(np.float32)  # padding is zeros
    got = np.asarray(otsu_threshold(p, valid)) * 255.0
    for i in range(n):
      ref = _skimage_threshold(p[i], None if valid is None else valid[i])
      assert abs(round(got[i]) - ref) <= 1, (got[i], ref)
      assert abs(got[i] - round(got[i])) < 1e-3   # lands on a bin
      exact += round(got[i]) == ref
      total += 1
  assert exact >= total - 1   # one-bin differences only on rare float ties


def test_padding_changes_nothing_when_masked():
  rng = np.random.default_rng(1)
  p = rng.random((2, 24, 24), dtype=np.float32)
  valid = np.zeros_like(p, bool)
  valid[:, :20, :20] = True
  a = np.asarray(otsu_threshold(p, valid))
  b = np.asarray(otsu_threshold(np.where(valid, p, 1.0), valid))
  np.testing.assert_array_equal(a, b)


def test_constant_and_empty_maps():
  p = np.full((2, 8, 8), 0.5, np.float32)
  valid = np.ones((2, 8, 8), bool)
  valid[1] = False
  got = np.asarray(otsu_threshold(p, valid)) * 255.0
  assert round(got[0]) == _skimage_threshold(p[0]) == 127
  assert got[1] == 0.0


def test_two_values_split_between_them():
  p = np.zeros((1, 10, 10), np.float32)
  p[0, :3] = 0.9
  t = float(otsu_threshold(p)[0])
  assert round(t * 255) == _skimage_threshold(p[0]) == 0
  assert ((p > t) == (p > 0.5)).all()
