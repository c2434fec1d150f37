"""Vessel biomarkers (cosnet_jax.biomarkers) against analytic shapes, and cosnet-measure."""
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cosnet_jax import biomarkers as B
from cosnet_jax.data import synthetic
from cosnet_jax.errors import UserError
from cosnet_jax.inference import segmenter as segmenter_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _bar(width, length=160, size=200, vertical=False):
  m = np.zeros((size, size), bool)
  top = size // 2 - width // 2
  m[top:top + width, 20:20 + length] = True
  return m.T.copy() if vertical else m


def _curve(ys, xs, size=200, half_width=1.5):
  """A vessel of width 2 * half_width along the dense polyline (ys, xs)."""
  yy, xx = np.mgrid[:size, :size]
  pts = np.stack([ys, xs], 1)
  m = np.zeros((size, size), bool)
  for chunk in np.array_split(pts, max(len(pts) // 400, 1)):
    d = np.min(np.hypot(yy[..., None] - chunk[:, 0], xx[..., None] - chunk[:, 1]), axis=-1)
    m |= d <= half_width
  return m


def _carpet(levels):
  c = np.ones((1, 1), bool)
  for _ in range(levels):
    z = np.zeros_like(c)
    c = np.block([[c, c, c], [c, z, c], [c, c, c]])
  return c


@pytest.mark.parametrize('width', [1, 3, 5])
def test_straight_bars(width):
  r = B.measure(_bar(width), spacing_um=10.0)
  mm = 10.0 / 1000
  assert r['vad'] == pytest.approx(width * 160 / 200 ** 2)
  assert r['area_mm2'] == pytest.approx((200 * mm) ** 2)
  # The centreline stops short of each end by up to half a width.
  assert (160 - width) * mm - 1e-9 <= r['skeleton_length_mm'] <= 159 * mm + 1e-9
  assert r['vsd_mm_per_mm2'] == pytest.approx(r['skeleton_length_mm'] / r['area_mm2'])
  # Odd widths measure exactly at the bar's middle; the ends pull the mean down a little.
  assert r['median_diameter_um'] == pytest.approx(width * 10.0, abs=0.5)
  assert r['vdi_um'] == pytest.approx(width * 10.0, rel=0.03)
  assert r['tortuosity'] == pytest.approx(1.0, abs=2e-3)
  assert r['segments'] == 1 and r['branch_points_per_mm2'] == 0
  assert 0.85 < r['fractal_dimension'] < 1.5    # a line at large scales, 2-D at small


def test_an_even_width_measures_one_pixel_less():
  assert B.measure(_bar(4))['median_diameter_px'] == pytest.approx(3.0)


def test_arc_and_sine_tortuosity():
  t = np.linspace(0, math.pi / 2, 20000)
  arc = B.measure(_curve(10 + 150 * np.sin(t), 10 + 150 * np.cos(t), size=200))
  assert arc['tortuosity'] == pytest.approx(math.pi / 2 / math.sqrt(2), abs=0.01)  # 1.1107
  assert arc['skeleton_length_px'] == pytest.approx(150 * math.pi / 2, rel=0.02)
  x = np.linspace(20, 180, 20000)
  y = 100 + 20 * np.sin(2 * math.pi * (x - 20) / 80)
  expected = np.sum(np.hypot(np.diff(x), np.diff(y))) / 160        # 1.4637
  assert B.measure(_curve(y, x))['tortuosity'] == pytest.approx(expected, abs=0.02)


def test_grid_junctions_and_segments():
  m = np.zeros((200, 200), bool)
  for k in range(25, 200, 50):      # 4 horizontal and 4 vertical lines, 3 px wide
    m[k - 1:k + 2, :] = True
    m[:, k - 1:k + 2] = True
  r = B.measure(m)
  assert r['branch_points_per_px2'] * 200 ** 2 == pytest.approx(16)
  # Each line: 3 inner segments between crossings and 2 to the border.
  assert r['segments'] == 8 * 5
  assert r['median_segment_length_px'] == pytest.approx(50, abs=1)
  assert r['tortuosity'] == pytest.approx(1.0, abs=2e-3)   # the inner segments only


def test_sierpinski_carpet_dimension():
  fd, r2 = B.box_counting(_carpet(6))                        # 729 x 729
  assert fd == pytest.approx(math.log(8) / math.log(3), abs=0.05) and r2 > 0.99
  assert B.box_counting(np.ones((256, 256), bool))[0] == pytest.approx(2.0)
  line = np.zeros((256, 256), bool)
  line[100] = True
  assert B.box_counting(line)[0] == pytest.approx(1.0)


def test_empty_full_and_one_pixel_masks():
  empty = B.measure(np.zeros((64, 64), np.uint8))
  assert empty['vad'] == 0 and empty['vsd_px_per_px2'] == 0 and empty['segments'] == 0
  assert empty['branch_points_per_px2'] == 0
  for k in ('vdi_px', 'mean_diameter_px', 'tortuosity', 'fractal_dimension'):
    assert math.isnan(empty[k]), k
  full = B.measure(np.full((64, 64), 255, np.uint8))
  assert full['vad'] == 1 and full['fractal_dimension'] == pytest.approx(2.0)
  one = B.measure(np.ones((1, 1), bool))
  assert one['area_px2'] == 1 and one['vad'] == 0             # a 1-pixel speck
  assert B.measure(np.ones((1, 1), bool), min_object_px=1)['vad'] == 1


def test_spacing_scales_lengths_not_ratios():
  m = _curve(100 + 30 * np.sin(np.linspace(0, 6, 5000)), np.linspace(10, 190, 5000))
  m[40:160, 98:101] = True                                   # a crossing vessel
  a, b = B.measure(m, spacing_um=5.0), B.measure(m, spacing_um=10.0)
  assert b['vsd_mm_per_mm2'] == pytest.approx(a['vsd_mm_per_mm2'] / 2)
  assert b['branch_points_per_mm2'] == pytest.approx(a['branch_points_per_mm2'] / 4)
  for k in ('vdi_um', 'mean_diameter_um', 'median_diameter_um', 'skeleton_length_mm',
            'mean_segment_length_mm'):
    assert b[k] == pytest.approx(2 * a[k]), k
  for k in ('vad', 'tortuosity', 'segments', 'fractal_dimension'):
    assert b[k] == pytest.approx(a[k]), k
  px = B.measure(m)
  assert px['vdi_px'] == pytest.approx(a['vdi_um'] / 5.0)


def test_a_quarter_turn_keeps_areas_and_dimension_and_lengths_to_one_percent():
  # Thinning (Zhang) is not exactly rotation-equivariant, at vessel ends and
  # junctions; areas and the box count (four anchored grids) are.
  for m in (_bar(3), _bar(5, vertical=True)):
    a, b = B.measure(m, 10.0), B.measure(np.rot90(m), 10.0)
    for k in a:
      assert a[k] == pytest.approx(b[k], rel=0.01, nan_ok=True), k
  tree = synthetic.generate_octa(synthetic.example_rng(1, 0, 0), 256)['mask'] > 0
  a, b = B.measure(tree, 10.0), B.measure(np.rot90(tree), 10.0)
  for k in ('vad', 'area_mm2', 'vessel_area_mm2', 'fractal_dimension', 'fd_r2'):
    assert a[k] == pytest.approx(b[k]), k
  for k in ('skeleton_length_mm', 'vdi_um', 'mean_diameter_um', 'tortuosity'):
    assert a[k] == pytest.approx(b[k], rel=0.01), k


def test_region_disc_and_annulus():
  m = np.ones((101, 101), bool)
  disc = B.region(m.shape, 10.0, (1.0,))                      # 1 mm = 100 px across
  assert disc.sum() == pytest.approx(math.pi * 50 ** 2, rel=0.01)
  ring = B.region(m.shape, 10.0, (0.5, 1.0))
  assert ring.sum() == pytest.approx(math.pi * (50 ** 2 - 25 ** 2), rel=0.02)
  r = B.measure(_bar(3, 180, 201), 10.0, roi_mm=(1.0,))
  assert r['area_mm2'] == pytest.approx(math.pi * 0.5 ** 2, rel=0.01)
  assert r['skeleton_length_mm'] == pytest.approx(1.0, abs=0.03)   # the disc's diameter
  assert math.isnan(r['tortuosity'])       # the one segment touches the region's border
  with pytest.raises(UserError, match='needs the pixel spacing'):
    B.measure(m, None, roi_mm=(1.0,))
  with pytest.raises(UserError, match='inner < outer'):
    B.measure(m, 10.0, roi_mm=(2.0, 1.0))


def test_bad_masks_are_named():
  with pytest.raises(B.MaskError, match=r'scan.png: not a binary mask \(3 values'):
    B.measure(np.array([[0, 1], [2, 2]], np.uint8), name='scan.png')
  with pytest.raises(B.MaskError, match='2-D'):
    B.measure(np.zeros((2, 2, 2, 2)), name='x')
  assert B.measure(np.array([[0, 7], [7, 0]], np.uint8))['vessel_area_px2'] == 0  # specks
  assert B.as_binary(np.array([[0, 7]], np.uint16)).tolist() == [[False, True]]


def test_segmenter_measures_its_masks_like_the_function(tiny_run):
  seg = segmenter_lib.Segmenter.from_workdir(tiny_run[0])
  _, mask = seg(synthetic.generate_octa(synthetic.example_rng(2, 0, 0), 96)['image'])
  assert seg.measure(mask, 10.0) == pytest.approx(B.measure(mask, 10.0), nan_ok=True)
  assert seg.measure(mask, 10.0, roi_mm=(0.5,))['area_mm2'] < 0.25


def _run_measure(*args, cwd):
  env = {'PYTHONPATH': str(ROOT), 'PATH': '/usr/bin:/bin', 'JAX_PLATFORMS': 'cpu',
         'HOME': str(cwd)}
  return subprocess.run([sys.executable, '-m', 'cosnet_jax.measure', *map(str, args)],
                        cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_measure_command_on_masks(tmp_path):
  folder = tmp_path / 'masks'
  folder.mkdir()
  Image.fromarray(_bar(3).astype(np.uint8) * 255).save(folder / 'a.png')
  Image.fromarray(_bar(5, vertical=True).astype(np.uint8)).save(folder / 'b.bmp')
  Image.fromarray(np.zeros((200, 200), np.uint8)).save(folder / 'empty.png')
  Image.fromarray(np.arange(40000, dtype=np.uint16).reshape(200, 200) % 7).save(
      folder / 'scan.png')
  (folder / 'broken.png').symlink_to(folder / 'missing.png')
  (folder / 'sub').mkdir()
  r = _run_measure('--input', folder, '--output', tmp_path / 't.csv', '--fov_mm', 2,
                   cwd=tmp_path)
  assert r.returncode == 1, r.stderr
  assert 'Traceback' not in r.stderr
  assert 'scan.png: not a binary mask' in r.stderr and 'broken.png: a broken link' in r.stderr
  assert 'empty: no vessel pixel' in r.stderr and '1 subfolder(s) skipped' in r.stderr
  lines = (tmp_path / 't.csv').read_text().splitlines()
  header = lines[0].split(',')
  assert header[:3] == ['image', 'spacing_um', 'vad'] and 'vsd_mm_per_mm2' in header
  rows = {l.split(',')[0]: dict(zip(header, l.split(','))) for l in lines[1:]}
  assert sorted(rows) == ['a', 'b', 'empty']
  want = B.measure(_bar(3), spacing_um=10.0)
  assert float(rows['a']['vdi_um']) == pytest.approx(want['vdi_um'], rel=1e-5)
  assert rows['empty']['tortuosity'] == ''
  table = json.loads((tmp_path / 't.json').read_text())
  assert table['images'][0]['image'] == 'a' and table['images'][2]['tortuosity'] is None
  assert table['summary']['vad']['n'] == 3
  # Without a spacing: pixels, and the header says so.
  r = _run_measure('--input', folder / 'a.png', '--output', tmp_path / 'px.csv', cwd=tmp_path)
  assert r.returncode == 0, r.stderr
  assert 'vdi_px' in (tmp_path / 'px.csv').read_text().splitlines()[0]
  r = _run_measure('--input', folder / 'a.png', '--output', tmp_path / 'r.csv',
                   '--roi_mm', '3,1', '--spacing_um', 10, cwd=tmp_path)
  assert r.returncode == 2 and r.stderr.startswith('error: --roi_mm') and 'Traceback' not in r.stderr
