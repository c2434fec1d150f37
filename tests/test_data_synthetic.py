"""The procedural OCTA generator."""
import numpy as np

from cosnet_jax.data import synthetic


def _gen(i, size=304, seed=0):
  return synthetic.generate_octa(synthetic.example_rng(seed, 0, i), size)


def test_deterministic_and_seed_dependent():
  a, b, c = _gen(0), _gen(0), _gen(0, seed=1)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a['image'], c['image'])


def test_labels_consistent_and_vessel_fraction_in_real_range():
  fractions = []
  for i in range(6):
    ex = _gen(i)
    assert ex['image'].dtype == np.uint8 and ex['image'].shape == (304, 304)
    for k in ('mask', 'thick', 'thin'):
      assert ex[k].dtype == np.uint8 and set(np.unique(ex[k]).tolist()) <= {0, 1}
    np.testing.assert_array_equal(ex['mask'], ex['thick'] | ex['thin'])
    assert not (ex['thick'] & ex['thin']).any()
    assert ex['thick'].mean() > 0.02 and ex['thin'].mean() > 0.02
    fractions.append(ex['mask'].mean())
  assert 0.05 <= min(fractions) and max(fractions) <= 0.15, fractions


def test_looks_like_octa_vessels_bright_faz_dark():
  ex = _gen(2)
  img = ex['image'].astype(np.float32)
  thick = ex['thick'].astype(bool)
  background = ~ex['mask'].astype(bool)
  # Large vessels are much brighter than the background.
  assert img[thick].mean() > 1.8 * img[background].mean()
  # There is a dark avascular zone near the centre: the darkest 24x24 window of
  # the central region is darker than the image mean and has no vessel.
  from scipy import ndimage
  local = ndimage.uniform_filter(img, 24)[100:204, 100:204]
  y, x = np.unravel_index(np.argmin(local), local.shape)
  assert local[y, x] < 0.6 * img.mean()
  assert ex['mask'][100 + y - 6:100 + y + 6, 100 + x - 6:100 + x + 6].sum() == 0
  # Not a flat image: speckle / texture everywhere.
  assert img[background].std() > 10


def test_other_sizes():
  ex = _gen(0, size=400)
  assert ex['image'].shape == (400, 400)
  assert 0.05 <= ex['mask'].mean() <= 0.16
