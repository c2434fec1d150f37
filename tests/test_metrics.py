"""Metrics vs scikit-learn / scikit-image and hand-worked cases."""
import json
import math

import numpy as np
import pytest
from skimage.filters import threshold_otsu
from skimage.morphology import skeletonize
from sklearn import metrics as skm

from cosnet_jax.evaluation import metrics as M


def _random_case(rng, h=40, w=56, frac=0.15):
  gt = rng.random((h, w)) < frac
  prob = np.clip(0.35 * gt + 0.65 * rng.random((h, w)), 0, 1).astype(np.float32)
  return prob, gt


def _finite(d):
  return all(math.isfinite(v) for k, v in d.items() if k in M.METRIC_NAMES)


# ------------------------------------------------------------------- AUC ---

@pytest.mark.parametrize('levels', [None, 3, 20, 256])
def test_auc_matches_sklearn_including_ties(levels):
  rng = np.random.default_rng(levels or 0)
  prob, gt = _random_case(rng, 64, 80)
  if levels is not None:  # heavy ties
    prob = (np.floor(prob * levels) / levels).astype(np.float32)
  ours = M.roc_auc(prob, gt)
  ref = skm.roc_auc_score(gt.ravel(), prob.ravel())
  assert abs(ours - ref) < 1e-9


def test_auc_float64_and_valid_mask_match_sklearn():
  rng = np.random.default_rng(1)
  prob, gt = _random_case(rng)
  prob = prob.astype(np.float64) + 1e-12 * rng.random(prob.shape)
  valid = rng.random(prob.shape) < 0.7
  res = M.image_metrics(prob, gt, valid)
  ref = skm.roc_auc_score(gt[valid], prob[valid])
  assert abs(res['auc'] - ref) < 1e-9


def test_auc_single_class_raises_or_uses_value():
  with pytest.raises(ValueError, match='single class'):
    M.roc_auc(np.arange(4.0), np.zeros(4))
  assert M.roc_auc(np.arange(4.0), np.ones(4), single_class_value=0.5) == 0.5


def test_roc_curve_matches_sklearn():
  rng = np.random.default_rng(2)
  prob, gt = _random_case(rng)
  prob = np.round(prob, 2)  # ties
  fpr, tpr, thr = M.roc_curve(prob, gt)
  rf, rt, rthr = skm.roc_curve(gt.ravel(), prob.ravel(),
                               drop_intermediate=False)
  np.testing.assert_allclose(fpr, rf, atol=1e-12)
  np.testing.assert_allclose(tpr, rt, atol=1e-12)
  np.testing.assert_allclose(thr[1:], rthr[1:])
  assert abs(np.trapezoid(tpr, fpr) - M.roc_auc(prob, gt)) < 1e-9


# ----------------------------------------------------------------- Otsu ---

def test_otsu_matches_skimage_on_uint8():
  rng = np.random.default_rng(3)
  for _ in range(5):
    prob, gt = _random_case(rng)
    u8 = np.array(prob * 255, np.uint8)  # the paper's conversion (truncation)
    np.testing.assert_array_equal(M.probability_to_uint8(prob), u8)
    t = threshold_otsu(u8)
    assert M.otsu_threshold_uint8(prob) == t
    pred, thr = M.binarize(prob, 'otsu')
    np.testing.assert_array_equal(pred, u8 > t)
    assert thr == t / 255


def test_otsu_uses_only_valid_pixels():
  rng = np.random.default_rng(4)
  prob, _ = _random_case(rng)
  valid = np.zeros(prob.shape, bool)
  valid[:30, :40] = True
  garbage = prob.copy()
  garbage[~valid] = 1.0
  u8 = np.array(prob * 255, np.uint8)
  t = threshold_otsu(u8[:30, :40])
  assert M.otsu_threshold_uint8(garbage, valid) == t
  pred, _ = M.binarize(garbage, 'otsu', valid)
  assert not pred[~valid].any()


def test_float_threshold_is_strict():
  prob = np.array([[0.4, 0.5, 0.6]])
  pred, thr = M.binarize(prob, 0.5)
  np.testing.assert_array_equal(pred, [[False, False, True]])
  assert thr == 0.5
  with pytest.raises(ValueError, match='otsu'):
    M.binarize(prob, 'mean')


# --------------------------------------------------- vs sklearn counts ---

@pytest.mark.parametrize('threshold', ['otsu', 0.5, 0.3])
def test_image_metrics_match_sklearn(threshold):
  rng = np.random.default_rng(5)
  prob, gt = _random_case(rng, 50, 70)
  valid = np.ones(prob.shape, bool)
  valid[45:, :] = False
  res = M.image_metrics(prob, gt, valid, threshold=threshold)
  pred, _ = M.binarize(prob, threshold, valid)
  y, p = gt[valid], pred[valid]
  tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
  assert (res['tp'], res['fp'], res['fn'], res['tn']) == (tp, fp, fn, tn)
  assert res['acc'] == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
  assert res['sen'] == pytest.approx(skm.recall_score(y, p), abs=1e-12)
  assert res['spe'] == pytest.approx(skm.recall_score(~y, ~p), abs=1e-12)
  assert res['dice'] == pytest.approx(skm.f1_score(y, p), abs=1e-12)
  assert res['iou'] == pytest.approx(skm.jaccard_score(y, p), abs=1e-12)
  assert res['kappa'] == pytest.approx(skm.cohen_kappa_score(y, p), abs=1e-12)
  assert res['fdr'] == pytest.approx(1 - skm.precision_score(y, p), abs=1e-12)
  assert res['gmean'] == pytest.approx(math.sqrt(res['sen'] * res['spe']))
  assert res['auc'] == pytest.approx(skm.roc_auc_score(y, prob[valid]),
                                     abs=1e-9)


def test_hand_worked_case():
  gt = np.array([[1, 1, 0], [0, 0, 0]])
  prob = np.array([[0.9, 0.2, 0.7], [0.1, 0.1, 0.1]])
  r = M.image_metrics(prob, gt, threshold=0.5)
  assert (r['tp'], r['fp'], r['fn'], r['tn']) == (1, 1, 1, 3)
  assert r['acc'] == pytest.approx(4 / 6)
  assert r['sen'] == pytest.approx(0.5)
  assert r['spe'] == pytest.approx(0.75)
  assert r['dice'] == pytest.approx(0.5)
  assert r['iou'] == pytest.approx(1 / 3)
  assert r['fdr'] == pytest.approx(0.5)
  assert r['gmean'] == pytest.approx(math.sqrt(0.375))
  # p_o = 4/6, p_e = (2*2 + 4*4)/36 = 20/36 -> kappa = (4/36)/(16/36)
  assert r['kappa'] == pytest.approx(0.25)
  # positives 0.9 (beats 4 negatives) and 0.2 (beats 3 of 4): 7/8
  assert r['auc'] == pytest.approx(0.875)


def test_labels_0_255_and_trailing_axis_accepted():
  rng = np.random.default_rng(6)
  prob, gt = _random_case(rng)
  a = M.image_metrics(prob, gt)
  b = M.image_metrics(prob[..., None], (gt * 255).astype(np.uint8)[..., None])
  assert a == b


# ------------------------------------------------------ degenerate cases ---

def test_all_background_empty_prediction_is_perfect():
  gt = np.zeros((16, 16))
  r = M.image_metrics(np.zeros((16, 16)), gt)
  assert _finite(r)
  for k in ('auc', 'acc', 'sen', 'spe', 'dice', 'iou', 'kappa', 'gmean',
            'cldice'):
    assert r[k] == 1.0, k
  assert r['fdr'] == 0.0


def test_all_background_with_false_positives():
  gt = np.zeros((16, 16))
  prob = np.zeros((16, 16))
  prob[4:8, 4:12] = 0.9
  r = M.image_metrics(prob, gt)
  assert _finite(r)
  assert r['auc'] == 0.5 and r['sen'] == 1.0 and r['dice'] == 0.0
  assert r['iou'] == 0.0 and r['fdr'] == 1.0 and r['kappa'] == 0.0
  assert r['spe'] == pytest.approx(1 - 32 / 256)
  assert r['cldice'] == 0.0


def test_all_vessel():
  gt = np.ones((12, 12))
  r = M.image_metrics(np.ones((12, 12)), gt, threshold=0.5)
  for k in ('auc', 'acc', 'sen', 'spe', 'dice', 'iou', 'kappa', 'gmean',
            'cldice'):
    assert r[k] == 1.0, k
  assert r['fdr'] == 0.0
  # Otsu on a constant map predicts nothing: all misses, still no NaN.
  r = M.image_metrics(np.full((12, 12), 0.8), gt)
  assert _finite(r)
  assert r['auc'] == 0.5 and r['sen'] == 0.0 and r['spe'] == 1.0
  assert r['dice'] == 0.0 and r['kappa'] == 0.0 and r['fdr'] == 0.0
  assert r['gmean'] == 0.0 and r['cldice'] == 0.0


def test_perfect_and_inverted():
  rng = np.random.default_rng(7)
  _, gt = _random_case(rng)
  r = M.image_metrics(gt.astype(np.float32), gt)
  for k in ('auc', 'acc', 'sen', 'spe', 'dice', 'iou', 'kappa', 'gmean',
            'cldice'):
    assert r[k] == 1.0, k
  assert r['fdr'] == 0.0
  inv = M.image_metrics(1.0 - gt.astype(np.float32), gt)
  assert inv['auc'] == 0.0
  assert inv['acc'] == inv['sen'] == inv['spe'] == inv['dice'] == 0.0
  assert inv['fdr'] == 1.0
  assert inv['kappa'] == pytest.approx(skm.cohen_kappa_score(gt.ravel(),
                                                             ~gt.ravel()))
  assert inv['kappa'] < 0


def test_garbage_in_padding_does_not_change_anything():
  rng = np.random.default_rng(8)
  prob, gt = _random_case(rng, 37, 45)
  big_p = rng.random((48, 64)).astype(np.float32)
  big_g = rng.random((48, 64)) < 0.5
  big_p[:37, :45] = prob
  big_g[:37, :45] = gt
  valid = np.zeros((48, 64), np.float32)
  valid[:37, :45] = 1
  for tol in (0, 1):
    for thr in ('otsu', 0.5):
      ref = M.image_metrics(prob, gt, threshold=thr, tolerance=tol)
      got = M.image_metrics(big_p, big_g, valid, threshold=thr, tolerance=tol)
      assert got == ref, (tol, thr)


def test_bad_inputs_raise_clear_errors():
  p = np.zeros((4, 4))
  with pytest.raises(ValueError, match='gt shape'):
    M.image_metrics(p, np.zeros((4, 5)))
  with pytest.raises(ValueError, match='no valid pixel'):
    M.image_metrics(p, p, np.zeros((4, 4)))
  with pytest.raises(ValueError, match='NaN'):
    M.image_metrics(np.full((4, 4), np.nan), p)
  with pytest.raises(ValueError, match='tolerance'):
    M.image_metrics(p, p, tolerance=-1)
  with pytest.raises(ValueError, match=r'\[H, W\]'):
    M.image_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
  with pytest.raises(ValueError, match="image 'b'"):
    M.evaluate_images([p, p], [p, np.zeros((3, 3))], ids=['a', 'b'])


# ----------------------------------------------------------- tolerance ---

def test_ellipse_kernel_is_opencv_ellipse():
  np.testing.assert_array_equal(M.ellipse_kernel(0), [[1]])
  np.testing.assert_array_equal(M.ellipse_kernel(1),
                                [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
  np.testing.assert_array_equal(
      M.ellipse_kernel(2),
      [[0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1],
       [0, 0, 1, 0, 0]])


def test_dilation_tolerance_hand_case():
  gt = np.zeros((7, 7))
  gt[:, 3] = 1                      # a centreline
  prob = np.zeros((7, 7))
  prob[:, 4] = 1                    # one pixel to the right
  r0 = M.image_metrics(prob, gt, threshold=0.5, tolerance=0)
  assert (r0['tp'], r0['fp'], r0['fn'], r0['tn']) == (0, 7, 7, 35)
  r1 = M.image_metrics(prob, gt, threshold=0.5, tolerance=1)
  # TP = pred & dilated gt, FN = ~pred & gt (undilated): partition kept.
  assert (r1['tp'], r1['fp'], r1['fn'], r1['tn']) == (7, 0, 7, 35)
  assert r1['sen'] == 0.5 and r1['fdr'] == 0.0 and r1['spe'] == 1.0
  # The 3x3 ellipse is a cross: a diagonal neighbour is not tolerated.
  gt = np.zeros((7, 7))
  gt[3, 3] = 1
  side, diag = np.zeros((7, 7)), np.zeros((7, 7))
  side[3, 4] = 1
  diag[4, 4] = 1
  assert M.image_metrics(side, gt, threshold=0.5, tolerance=1)['tp'] == 1
  r = M.image_metrics(diag, gt, threshold=0.5, tolerance=1)
  assert (r['tp'], r['fp']) == (0, 1)


def test_confusion_maps_partition_valid_pixels():
  rng = np.random.default_rng(9)
  prob, gt = _random_case(rng)
  valid = rng.random(gt.shape) < 0.8
  pred, _ = M.binarize(prob, 'otsu', valid)
  maps = M.confusion_maps(pred, gt, valid, tolerance=1)
  total = sum(maps[k].astype(int) for k in M.COUNT_KEYS)
  np.testing.assert_array_equal(total, valid.astype(int))


# --------------------------------------------------------------- clDice ---

def test_cldice_identical_and_disjoint():
  gt = np.zeros((20, 20), bool)
  gt[5:8, 2:18] = True
  gt[2:18, 12:15] = True
  assert M.cldice(gt, gt) == 1.0
  other = np.zeros((20, 20), bool)
  other[15:18, 0:8] = True
  assert M.cldice(other, gt) == 0.0
  assert M.cldice(np.zeros((20, 20)), gt) == 0.0
  assert M.cldice(np.zeros((20, 20)), np.zeros((20, 20))) == 1.0


def test_cldice_broken_vessel():
  gt = np.zeros((9, 30), bool)
  gt[3:6, 2:28] = True
  pred = gt.copy()
  pred[:, 14:16] = False            # a 2-pixel gap breaks connectivity
  c = M.skeleton_counts(pred, gt)
  s_g = skeletonize(gt)
  assert c['skel_gt'] == s_g.sum()
  assert c['skel_pred_in_gt'] == c['skel_pred']            # Tprec = 1
  assert c['skel_gt_in_pred'] == (s_g & pred).sum()
  assert c['skel_gt_in_pred'] == c['skel_gt'] - 2
  tsens = c['skel_gt_in_pred'] / c['skel_gt']
  assert M.cldice(pred, gt) == pytest.approx(2 * tsens / (1 + tsens))


# ------------------------------------------------------------ summaries ---

def test_summarize_mean_std_and_pooled_counts():
  rng = np.random.default_rng(10)
  cases = [_random_case(rng, 30, 40, f) for f in (0.05, 0.1, 0.2)]
  cases.append((np.zeros((30, 40), np.float32), np.zeros((30, 40), bool)))
  probs = [c[0] for c in cases]
  gts = [c[1] for c in cases]
  per = M.evaluate_images(probs, gts, ids=['a', 'b', 'c', 'empty'],
                          threshold=0.5)
  scores, labels = M.valid_pixels(probs, gts)
  s = M.summarize(per, pooled_auc=M.roc_auc(scores, labels))
  json.dumps(s)  # plain Python numbers
  assert [r['id'] for r in s['per_image']] == ['a', 'b', 'c', 'empty']
  assert set(s['summary']) == set(M.METRIC_NAMES)
  for m in M.METRIC_NAMES:
    vals = np.array([r[m] for r in per])
    assert s['summary'][m]['mean'] == pytest.approx(vals.mean())
    assert s['summary'][m]['std'] == pytest.approx(vals.std())
  # Pooled = metrics of the summed counts = metrics of all images side by
  # side, separated by an invalid column (threshold fixed, so no per-image
  # Otsu).
  gap_p = [np.concatenate([p, np.zeros((30, 1))], 1) for p in probs]
  gap_g = [np.concatenate([g, np.zeros((30, 1))], 1) for g in gts]
  gap_v = [np.concatenate([np.ones((30, 40)), np.zeros((30, 1))], 1)] * 4
  joined = M.image_metrics(np.concatenate(gap_p, 1), np.concatenate(gap_g, 1),
                           np.concatenate(gap_v, 1), threshold=0.5)
  for k in M.METRIC_NAMES + M.COUNT_KEYS + M.SKELETON_KEYS:
    assert s['pooled'][k] == pytest.approx(joined[k], abs=1e-12), k
  assert s['pooled']['auc'] == pytest.approx(
      skm.roc_auc_score(np.concatenate([g.ravel() for g in gts]),
                        np.concatenate([p.ravel() for p in probs])), abs=1e-9)


def test_summarize_without_pooled_auc_and_errors():
  rng = np.random.default_rng(11)
  per = M.evaluate_images(*zip(*[_random_case(rng) for _ in range(2)]))
  s = M.summarize(per)
  assert 'auc' not in s['pooled'] and 'dice' in s['pooled']
  with pytest.raises(ValueError, match='no per-image'):
    M.summarize([])
  with pytest.raises(ValueError, match='lacks keys'):
    M.summarize([{'id': 'x', 'dice': 1.0}])
