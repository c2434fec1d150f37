"""Report files: JSON schema, markdown table, ROC and overlay PNGs."""
import json

import numpy as np
import pytest
from PIL import Image

from cosnet_jax.evaluation import metrics as M
from cosnet_jax.evaluation import report as R


def _dataset(rng):
  """Three images: 32x40, and two 24x28 images padded to 32x40."""
  images, gts, probs, coarse, valids = [], [], [], [], []
  for h, w in [(32, 40), (24, 28), (24, 28)]:
    img = np.zeros((32, 40), np.float32)
    gt = np.zeros((32, 40), bool)
    img[:h, :w] = rng.random((h, w))
    gt[:h, :w] = rng.random((h, w)) < 0.2
    noise = rng.random((32, 40))
    prob = np.clip(0.5 * gt + 0.5 * noise, 0, 1).astype(np.float32)
    valid = np.zeros((32, 40), np.float32)
    valid[:h, :w] = 1
    images.append(img)
    gts.append(gt)
    probs.append(prob)
    coarse.append(np.clip(0.3 * gt + 0.7 * noise, 0, 1).astype(np.float32))
    valids.append(valid)
  return images, gts, probs, coarse, valids


def test_write_report_files_and_schema(tmp_path):
  rng = np.random.default_rng(0)
  images, gts, probs, coarse_probs, valids = _dataset(rng)
  ids = ['10451', 'dir/img 2', '10453']
  results = M.evaluate_images(probs, gts, valids, ids)
  coarse = M.evaluate_images(coarse_probs, gts, valids, ids)
  out = R.write_report(tmp_path / 'rep', results, images=images, gts=gts,
                       probs=probs, ids=ids, valids=valids, coarse=coarse,
                       coarse_probs=coarse_probs)
  rep = tmp_path / 'rep'
  for name, res in (('metrics.json', results), ('metrics_coarse.json', coarse)):
    data = json.loads((rep / name).read_text())
    assert set(data) >= {'summary', 'pooled', 'per_image'}
    assert list(data['summary']) == list(M.METRIC_NAMES)
    for m in M.METRIC_NAMES:
      assert set(data['summary'][m]) == {'mean', 'std'}
      vals = [r[m] for r in res]
      assert data['summary'][m]['mean'] == pytest.approx(np.mean(vals))
      assert data['summary'][m]['std'] == pytest.approx(np.std(vals))
      assert np.isfinite(data['pooled'][m])
    assert set(M.COUNT_KEYS) <= set(data['pooled'])
    assert [r['id'] for r in data['per_image']] == ids
    assert data['per_image'][1]['dice'] == pytest.approx(res[1]['dice'])
    assert data['settings'] == {'threshold': 'otsu', 'tolerance': 0,
                                'num_images': 3}
  # Pooled AUC is over the valid pixels of all images.
  scores, labels = M.valid_pixels(probs, gts, valids)
  assert out['refined']['pooled']['auc'] == pytest.approx(
      M.roc_auc(scores, labels))
  assert out['coarse']['pooled']['auc'] < out['refined']['pooled']['auc']

  md = (rep / 'metrics.md').read_text()
  header = [line for line in md.splitlines() if line.startswith('| Output')][0]
  cols = [c.strip() for c in header.strip('|').split('|')]
  assert cols == ['Output', 'AUC', 'ACC', 'SEN', 'SPE', 'Dice', 'IoU',
                  'Kappa', 'FDR', 'G-mean', 'clDice']
  rows = [line for line in md.splitlines() if line.startswith('| coarse')
          or line.startswith('| refined')]
  assert len(rows) == 4 and rows[0].startswith('| coarse')  # mean±std, pooled
  assert f"{out['refined']['summary']['dice']['mean']:.4f} ± " in rows[1]

  with Image.open(rep / 'roc.png') as im:
    assert im.size == (600, 600)
  files = sorted(p.name for p in (rep / 'overlays').iterdir())
  assert files == ['10451.png', '10453.png', 'dir_img_2.png']
  gap = R.PANEL_GAP
  for name, (h, w) in [('10451.png', (32, 40)), ('dir_img_2.png', (24, 28))]:
    with Image.open(rep / 'overlays' / name) as im:
      assert im.size == (4 * w + 3 * gap, h) and im.mode == 'RGB'


def test_overlay_panels_colours(tmp_path):
  image = np.full((6, 8), 0.5, np.float32)
  gt = np.zeros((6, 8))
  gt[1, 1] = gt[1, 2] = gt[3, 3] = 1
  prob = np.zeros((6, 8), np.float32)
  prob[1, 1] = 0.9   # TP
  prob[4, 6] = 0.9   # FP; gt[1, 2] and gt[3, 3] are FN
  results = M.evaluate_images([prob], [gt], ids=['x'], threshold=0.5)
  R.write_report(tmp_path, results, images=[image], gts=[gt], probs=[prob],
                 threshold=0.5)
  panel = np.asarray(Image.open(tmp_path / 'overlays' / 'x.png'))
  w, g = 8, R.PANEL_GAP
  img_p = panel[:, :w]
  gt_p = panel[:, w + g:2 * w + g]
  pred_p = panel[:, 2 * (w + g):3 * w + 2 * g]
  err = panel[:, 3 * (w + g):]
  assert (img_p == 127).all()                     # uint8(0.5 * 255)
  np.testing.assert_array_equal(gt_p[..., 0] > 0, gt > 0)
  np.testing.assert_array_equal(pred_p[..., 0] > 0, prob > 0.5)
  assert tuple(err[1, 1]) == R.TP_COLOR
  assert tuple(err[4, 6]) == R.FP_COLOR
  assert tuple(err[1, 2]) == R.FN_COLOR == tuple(err[3, 3])
  assert tuple(err[0, 0]) == (0, 0, 0)
  assert (panel[:, w:w + g] == 128).all()         # grey gap
  assert not (tmp_path / 'metrics_coarse.json').exists()
  md = (tmp_path / 'metrics.md').read_text()
  assert '| refined |' in md and '| coarse |' not in md


def test_report_of_a_stage1_run_labels_its_row_coarse(tmp_path):
  rng = np.random.default_rng(5)
  gt = (rng.random((12, 12)) > 0.7).astype(np.float32)
  prob = np.clip(gt * 0.6 + rng.random((12, 12)) * 0.4, 0, 1).astype(np.float32)
  res = [dict(id='a', **M.image_metrics(prob, gt, None))]
  R.write_report(tmp_path, res, images=[prob], gts=[gt], probs=[prob],
                 overlays=False, label='coarse')
  md = (tmp_path / 'metrics.md').read_text()
  assert '| coarse |' in md and '| refined |' not in md


def test_report_with_single_class_set_has_no_nan(tmp_path):
  z = np.zeros((8, 8), np.float32)
  results = M.evaluate_images([z, z], [z, z])
  out = R.write_report(tmp_path, results, images=[z, z], gts=[z, z],
                       probs=[z, z], overlays=False)
  data = json.loads((tmp_path / 'metrics.json').read_text())
  assert data['pooled']['auc'] == 1.0 and data['summary']['dice']['mean'] == 1
  assert (tmp_path / 'roc.png').exists()
  assert not (tmp_path / 'overlays').exists()
  assert out['coarse'] is None


def test_write_report_rejects_mismatched_inputs(tmp_path):
  z = np.zeros((8, 8), np.float32)
  results = M.evaluate_images([z], [z])
  with pytest.raises(ValueError, match='probs has 2 entries'):
    R.write_report(tmp_path, results, images=[z], gts=[z], probs=[z, z])
  with pytest.raises(ValueError, match='coarse_probs'):
    R.write_report(tmp_path, results, images=[z], gts=[z], probs=[z],
                   coarse=results)


def test_single_image_writers(tmp_path):
  image = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)
  mask = np.zeros((5, 6), bool)
  mask[2, 3] = True
  R.save_overlay(tmp_path / 'o.png', image, mask, color=(255, 0, 0), alpha=0.5)
  ov = np.asarray(Image.open(tmp_path / 'o.png'))
  assert ov.shape == (5, 6, 3)
  g = int(np.array(image[2, 3] * 255, np.uint8))
  assert tuple(ov[2, 3]) == (round((g + 255) / 2), round(g / 2), round(g / 2))
  assert ov[0, 1, 0] == ov[0, 1, 1] == ov[0, 1, 2]   # untinted grey
  R.save_probability_png(tmp_path / 'p.png', image)
  back = np.asarray(Image.open(tmp_path / 'p.png')).astype(np.float64) / 65535
  assert np.abs(back - image).max() <= 0.5 / 65535 + 1e-9
  R.save_mask_png(tmp_path / 'm.png', mask)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'm.png')),
                                mask.astype(np.uint8) * 255)
  with pytest.raises(ValueError, match='mask shape'):
    R.save_overlay(tmp_path / 'bad.png', image, mask[:4])
