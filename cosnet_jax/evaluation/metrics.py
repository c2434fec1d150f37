"""Vessel-segmentation metrics as used in the OCTA literature (NumPy only).

Per image (`image_metrics`), then mean / std over a test set and pooled over
all pixels (`summarize`). Definitions follow the COSNet / OCTA-Net evaluation
code (reference §6):

* AUC: area under the ROC curve of the probability map against the binary
  ground truth, over the valid pixels. Ties count one half (identical to
  `sklearn.metrics.roc_auc_score`).
* The binary prediction at a threshold:
  - ``threshold='otsu'`` (the paper's default): ``u = uint8(clip(p, 0, 1) *
    255)`` (truncation, as ``np.array(p * 255, np.uint8)``), ``t`` = Otsu's
    threshold of ``u`` over the valid pixels (`skimage.filters.threshold_otsu`,
    which matches ``cv2.THRESH_OTSU``), prediction ``u > t``; the reported
    threshold is ``t / 255``.
  - a float ``t``: prediction ``p > t`` (``0.5`` is the usual alternative).
* Confusion counts with an optional tolerance for centreline labels (ROSE
  DVC / ROSE-2 practice): with ``G`` the ground truth and ``D`` ``G`` dilated
  by an OpenCV-style elliptical kernel of size ``2 * tolerance + 1``
  (``tolerance=1``: the 3x3 ellipse, a cross):
  ``TP = pred & D``, ``FP = pred & ~D``, ``FN = ~pred & G``,
  ``TN = ~pred & ~G``.
  The four sets partition the valid pixels; ``tolerance=0`` is plain counting.
* ACC = (TP+TN)/N, SEN = TP/(TP+FN), SPE = TN/(TN+FP), FDR = FP/(FP+TP),
  Dice = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN), G-mean = sqrt(SEN*SPE),
  Kappa = (p_o - p_e)/(1 - p_e) with p_o = (TP+TN)/N and
  p_e = ((TP+FP)(TP+FN) + (FN+TN)(FP+TN))/N^2.
* clDice (Shit et al., CVPR 2021): ``S_p``, ``S_g`` = skeletons
  (`skimage.morphology.skeletonize`) of prediction and ground truth;
  Tprec = |S_p & G'| / |S_p| (``G'`` = the dilated ground truth ``D`` when a
  tolerance is set, else ``G``), Tsens = |S_g & pred| / |S_g|,
  clDice = 2 Tprec Tsens / (Tprec + Tsens).

Degenerate cases have defined values (never NaN), so that all-background or
all-vessel images can be averaged. The convention is "an empty requirement is
met": a ratio whose denominator counts nothing that could go wrong is perfect.

* SEN = 1 when the ground truth has no vessel pixel (TP+FN = 0);
  SPE = 1 when it has no background pixel (TN+FP = 0);
  FDR = 0 when nothing is predicted (FP+TP = 0);
  Dice = IoU = 1 when prediction and ground truth are both empty;
  Kappa = 1 when p_e = 1 (which happens only when prediction and ground truth
  are the same single class, i.e. p_o = 1 as well);
  Tprec = 1 when S_p is empty, Tsens = 1 when S_g is empty, clDice = 0 when
  Tprec + Tsens = 0.
* AUC is undefined when the valid ground truth has a single class (no
  vessel/background pair to rank). We then report 1.0 if the thresholded
  prediction makes no error (FP = FN = 0) and 0.5 (chance) otherwise, i.e. the
  AUC of a ranking that is perfect if and only if the decision is.

Pixels where ``valid`` is 0 (padding) are excluded from everything: their
probability and label values never affect any metric (the ground truth is
zeroed there before dilation and skeletonisation).

Shapes: ``prob``, ``gt``, ``valid`` are [H, W] (a trailing axis of size 1 is
accepted). ``gt`` is binarised as ``gt > 0.5`` (so {0, 1} and {0, 255} both
work); ``valid`` as ``valid > 0``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.morphology import skeletonize

# Metric names, in the column order of the paper's tables.
METRIC_NAMES = ('auc', 'acc', 'sen', 'spe', 'dice', 'iou', 'kappa', 'fdr',
                'gmean', 'cldice')
# The ones logged at validation and tabulated across models (cross_domain).
SUMMARY_METRICS = ('dice', 'auc', 'acc', 'sen', 'spe', 'cldice')
# Confusion counts stored per image (pooled metrics sum these).
COUNT_KEYS = ('tp', 'fp', 'fn', 'tn')
# Skeleton counts behind clDice: |S_p|, |S_p & G'|, |S_g|, |S_g & pred|.
SKELETON_KEYS = ('skel_pred', 'skel_pred_in_gt', 'skel_gt', 'skel_gt_in_pred')


# ----------------------------------------------------------------- inputs ---

def _as_2d(name: str, array: Any) -> np.ndarray:
  """Returns `array` as an [H, W] array; accepts [H, W, 1]."""
  arr = np.asarray(array)
  if arr.ndim == 3 and arr.shape[-1] == 1:
    arr = arr[..., 0]
  if arr.ndim != 2:
    raise ValueError(f'{name} must have shape [H, W] (or [H, W, 1]); '
                     f'got {arr.shape}')
  return arr


def _prepare(prob, gt, valid):
  """Validates and returns (prob [H,W], gt bool [H,W], valid bool [H,W])."""
  prob = _as_2d('prob', prob)
  gt = _as_2d('gt', gt)
  if gt.shape != prob.shape:
    raise ValueError(f'gt shape {gt.shape} != prob shape {prob.shape}')
  if valid is None:
    valid = np.ones(prob.shape, bool)
  else:
    valid = _as_2d('valid', valid)
    if valid.shape != prob.shape:
      raise ValueError(f'valid shape {valid.shape} != prob shape {prob.shape}')
    valid = valid > 0
  if not valid.any():
    raise ValueError('valid mask has no valid pixel')
  if not np.issubdtype(prob.dtype, np.floating):
    prob = prob.astype(np.float64)
  if not np.isfinite(prob[valid]).all():
    raise ValueError('prob contains NaN or infinite values on valid pixels')
  gt = (gt > 0.5) & valid
  return prob, gt, valid


# -------------------------------------------------------------- threshold ---

def probability_to_uint8(prob: np.ndarray) -> np.ndarray:
  """uint8(clip(prob, 0, 1) * 255) with truncation, as the paper's code.

  Args:
    prob: float [H, W] probabilities.
  Returns:
    uint8 [H, W].
  """
  prob = np.asarray(prob)
  if not np.issubdtype(prob.dtype, np.floating):
    prob = prob.astype(np.float64)
  return (np.clip(prob, 0, 1) * 255).astype(np.uint8)


def otsu_threshold_uint8(prob: np.ndarray, valid: np.ndarray | None = None
                         ) -> int:
  """Otsu's threshold (0..255) of uint8(prob*255) over the valid pixels.

  Args:
    prob: float [H, W] probabilities.
    valid: optional bool [H, W]; only these pixels enter the histogram.
  Returns:
    int t such that the prediction is ``uint8(prob*255) > t``. For a constant
    image t is that constant (so nothing is predicted).
  """
  values = probability_to_uint8(prob)
  if valid is not None:
    values = values[np.asarray(valid, bool)]
  if values.size == 0:
    raise ValueError('no valid pixel to compute an Otsu threshold on')
  return int(threshold_otsu(values.reshape(-1)))


def binarize(prob: np.ndarray, threshold: str | float = 'otsu',
             valid: np.ndarray | None = None) -> tuple[np.ndarray, float]:
  """Thresholds a probability map (see the module docstring for the rule).

  Args:
    prob: float [H, W] probabilities in [0, 1].
    threshold: 'otsu' (per image, over valid pixels) or a float t (p > t).
    valid: optional [H, W] mask (nonzero = real pixel) for Otsu's histogram.
  Returns:
    (pred bool [H, W], threshold float in probability units). ``pred`` is
    False wherever ``valid`` is 0.
  """
  prob = _as_2d('prob', prob)
  valid_b = None if valid is None else _as_2d('valid', valid) > 0
  if isinstance(threshold, str):
    if threshold.lower() != 'otsu':
      raise ValueError(
          f"threshold must be 'otsu' or a float; got {threshold!r}")
    t = otsu_threshold_uint8(prob, valid_b)
    pred = probability_to_uint8(prob) > t
    thr = t / 255.0
  else:
    try:
      thr = float(threshold)
    except (TypeError, ValueError):
      raise ValueError(
          f"threshold must be 'otsu' or a float; got {threshold!r}") from None
    if not math.isfinite(thr):
      raise ValueError(f'threshold must be finite; got {threshold!r}')
    pred = np.asarray(prob) > thr
  if valid_b is not None:
    pred &= valid_b
  return pred, thr


# ------------------------------------------------------------------- ROC ---

def _scores_labels(scores, labels):
  scores = np.asarray(scores).reshape(-1)
  labels = np.asarray(labels).reshape(-1)
  if scores.shape != labels.shape:
    raise ValueError(f'scores ({scores.size}) and labels ({labels.size}) '
                     'differ in length')
  if not np.issubdtype(scores.dtype, np.floating):
    scores = scores.astype(np.float64)
  if not np.isfinite(scores).all():
    raise ValueError('scores contain NaN or infinite values')
  return scores, labels.astype(bool)


def roc_auc(scores: np.ndarray, labels: np.ndarray, *,
            single_class_value: float | None = None) -> float:
  """Exact ROC AUC (Mann-Whitney U, ties count 1/2), like sklearn's.

  Sort-based, O(N log N): sorts positives and negatives (no argsort) and
  counts, for every positive, the negatives below it and tied with it.
  About 0.03 s for a 1216x1216 image, 0.5 s for 4.6M pooled pixels.

  Args:
    scores: float [N] (any shape; flattened).
    labels: [N] bool / {0, 1}.
    single_class_value: returned when the labels hold a single class; None
      raises ValueError instead.
  Returns:
    AUC in [0, 1].
  """
  scores, labels = _scores_labels(scores, labels)
  pos = np.sort(scores[labels])
  neg = np.sort(scores[~labels])
  n_pos, n_neg = pos.size, neg.size
  if n_pos == 0 or n_neg == 0:
    if single_class_value is None:
      raise ValueError('AUC is undefined: labels hold a single class')
    return float(single_class_value)
  below = np.searchsorted(neg, pos, side='left').sum(dtype=np.int64)
  not_above = np.searchsorted(neg, pos, side='right').sum(dtype=np.int64)
  # 2 * sum over positives of (#neg below + #neg tied / 2) is an exact
  # integer; one division keeps the result exact to float rounding.
  return float((int(below) + int(not_above)) / (2.0 * n_pos * n_neg))


def roc_curve(scores: np.ndarray, labels: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """ROC curve at every distinct score (sklearn's, drop_intermediate=False).

  Args:
    scores: float [N]; labels: [N] bool / {0, 1}, with both classes present.
  Returns:
    (fpr [K+1], tpr [K+1], thresholds [K+1]) with K the number of distinct
    scores, thresholds decreasing; point k counts the scores >= thresholds[k].
    The first point is (0, 0) at threshold +inf, the last (1, 1).
  """
  scores, labels = _scores_labels(scores, labels)
  n_pos = int(labels.sum())
  n_neg = labels.size - n_pos
  if n_pos == 0 or n_neg == 0:
    raise ValueError('ROC curve is undefined: labels hold a single class')
  ordered = np.sort(scores)
  first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
  values = ordered[first]                                # ascending, distinct
  pos = np.sort(scores[labels])
  tps = n_pos - np.searchsorted(pos, values, side='left')  # #pos >= value
  fps = (ordered.size - first) - tps                       # #neg >= value
  fpr = np.r_[0.0, fps[::-1] / n_neg]
  tpr = np.r_[0.0, tps[::-1] / n_pos]
  thresholds = np.r_[np.inf, values[::-1]]
  return fpr, tpr, thresholds


def valid_pixels(probs: Sequence[np.ndarray], gts: Sequence[np.ndarray],
                 valids: Sequence[np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Concatenates the valid pixels of a set of images (for pooled ROC / AUC).

  Args:
    probs, gts: sequences of [H_i, W_i] arrays; valids: None or a sequence of
      [H_i, W_i] masks (None entries = all valid).
  Returns:
    (scores float [N], labels bool [N]) over all valid pixels.
  """
  if len(probs) != len(gts):
    raise ValueError(f'{len(probs)} probability maps but {len(gts)} gts')
  if valids is not None and len(valids) != len(probs):
    raise ValueError(f'{len(probs)} probability maps but {len(valids)} masks')
  scores, labels = [], []
  for i, (prob, gt) in enumerate(zip(probs, gts)):
    valid = None if valids is None else valids[i]
    try:
      prob, gt, valid = _prepare(prob, gt, valid)
    except ValueError as e:
      raise ValueError(f'image {i}: {e}') from None
    scores.append(prob[valid])
    labels.append(gt[valid])
  if not scores:
    raise ValueError('no images')
  return np.concatenate(scores), np.concatenate(labels)


# ------------------------------------------------------------ confusion ---

def _check_tolerance(tolerance) -> int:
  if (isinstance(tolerance, bool) or int(tolerance) != tolerance
      or tolerance < 0):
    raise ValueError(f'tolerance must be an integer >= 0; got {tolerance!r}')
  return int(tolerance)


def ellipse_kernel(radius: int) -> np.ndarray:
  """OpenCV's MORPH_ELLIPSE structuring element of size 2*radius+1.

  Args:
    radius: >= 0. radius=1 gives the 3x3 ellipse (a cross).
  Returns:
    bool [2r+1, 2r+1].
  """
  r = _check_tolerance(radius)
  size = 2 * r + 1
  kernel = np.zeros((size, size), bool)
  for i in range(size):
    dy = i - r
    dx = 0 if r == 0 else int(np.rint(r * math.sqrt(1.0 - dy * dy / (r * r))))
    kernel[i, max(r - dx, 0):min(r + dx + 1, size)] = True
  return kernel


def dilate(mask: np.ndarray, tolerance: int) -> np.ndarray:
  """Binary dilation of mask [H, W] by `ellipse_kernel(tolerance)`."""
  mask = np.asarray(mask, bool)
  if _check_tolerance(tolerance) == 0:
    return mask
  return ndimage.binary_dilation(mask, structure=ellipse_kernel(tolerance))


def _prepare_pred(pred, gt, valid):
  """Validates a binary prediction; returns bool (pred, gt, valid) [H, W]."""
  pred = _as_2d('pred', pred)
  if pred.dtype != bool:
    pred = pred.astype(np.float64)
  pred_b, gt_b, valid_b = _prepare(pred, gt, valid)
  return (pred_b > 0.5) & valid_b, gt_b, valid_b


def _maps(pred_b, gt_b, valid_b, dilated):
  return {
      'tp': pred_b & dilated,
      'fp': pred_b & ~dilated,
      'fn': ~pred_b & gt_b,
      'tn': ~pred_b & ~gt_b & valid_b,
  }


def confusion_maps(pred: np.ndarray, gt: np.ndarray,
                   valid: np.ndarray | None = None, *, tolerance: int = 0
                   ) -> dict[str, np.ndarray]:
  """Per-pixel TP / FP / FN / TN maps (with the centreline tolerance).

  Args:
    pred: [H, W] binary prediction; gt: [H, W] labels (> 0.5 = vessel);
    valid: optional [H, W] mask (nonzero = real pixel); tolerance: dilation
      radius for the ground truth (0 = none, 1 = the 3x3 ellipse).
  Returns:
    dict 'tp', 'fp', 'fn', 'tn' of bool [H, W]; they partition the valid
    pixels and are all False on invalid ones.
  """
  pred_b, gt_b, valid_b = _prepare_pred(pred, gt, valid)
  return _maps(pred_b, gt_b, valid_b, dilate(gt_b, tolerance))


def _ratio(num: float, den: float, empty: float) -> float:
  return float(num / den) if den > 0 else float(empty)


def scores_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
  """ACC SEN SPE Dice IoU Kappa FDR G-mean from confusion counts.

  Degenerate denominators follow the module conventions (no NaN).
  Returns:
    dict with keys acc sen spe dice iou kappa fdr gmean (floats).
  """
  tp, fp, fn, tn = (int(v) for v in (tp, fp, fn, tn))
  if min(tp, fp, fn, tn) < 0:
    raise ValueError('confusion counts must be >= 0')
  n = tp + fp + fn + tn
  if n == 0:
    raise ValueError('confusion counts are all zero')
  sen = _ratio(tp, tp + fn, 1.0)
  spe = _ratio(tn, tn + fp, 1.0)
  p_o = (tp + tn) / n
  # Integer numerator: exact before the single division.
  p_e = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
  kappa = 1.0 if p_e >= 1.0 else (p_o - p_e) / (1.0 - p_e)
  return {
      'acc': p_o,
      'sen': sen,
      'spe': spe,
      'dice': _ratio(2 * tp, 2 * tp + fp + fn, 1.0),
      'iou': _ratio(tp, tp + fp + fn, 1.0),
      'kappa': float(kappa),
      'fdr': _ratio(fp, fp + tp, 0.0),
      'gmean': math.sqrt(sen * spe),
  }


# ----------------------------------------------------------------- clDice ---

def _skeleton_counts(pred_b, gt_b, dilated):
  skel_p = skeletonize(pred_b) if pred_b.any() else pred_b
  skel_g = skeletonize(gt_b) if gt_b.any() else gt_b
  return {
      'skel_pred': int(np.count_nonzero(skel_p)),
      'skel_pred_in_gt': int(np.count_nonzero(skel_p & dilated)),
      'skel_gt': int(np.count_nonzero(skel_g)),
      'skel_gt_in_pred': int(np.count_nonzero(skel_g & pred_b)),
  }


def skeleton_counts(pred: np.ndarray, gt: np.ndarray,
                    valid: np.ndarray | None = None, *, tolerance: int = 0
                    ) -> dict[str, int]:
  """The four counts behind clDice (see the module docstring).

  Args:
    pred, gt, valid: [H, W] (binary prediction, labels > 0.5, mask > 0).
    tolerance: dilation radius applied to the ground truth in Tprec.
  Returns:
    dict skel_pred, skel_pred_in_gt, skel_gt, skel_gt_in_pred (ints).
  """
  pred_b, gt_b, valid_b = _prepare_pred(pred, gt, valid)
  return _skeleton_counts(pred_b, gt_b, dilate(gt_b, tolerance))


def cldice_from_counts(skel_pred: int, skel_pred_in_gt: int, skel_gt: int,
                       skel_gt_in_pred: int) -> float:
  """clDice from skeleton counts (Tprec = 1 / Tsens = 1 for empty skeletons)."""
  tprec = _ratio(skel_pred_in_gt, skel_pred, 1.0)
  tsens = _ratio(skel_gt_in_pred, skel_gt, 1.0)
  return _ratio(2.0 * tprec * tsens, tprec + tsens, 0.0)


def cldice(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
           *, tolerance: int = 0) -> float:
  """Centreline Dice of a binary prediction [H, W] against gt [H, W]."""
  return cldice_from_counts(**skeleton_counts(pred, gt, valid,
                                              tolerance=tolerance))


# ------------------------------------------------------------- per image ---

def single_class_auc(fp: int, fn: int) -> float:
  """AUC used when the ground truth holds a single class (module docstring).

  1.0 when the thresholded prediction makes no error (fp = fn = 0), else 0.5.
  """
  return 1.0 if fp == 0 and fn == 0 else 0.5


def image_metrics(prob: np.ndarray, gt: np.ndarray,
                  valid: np.ndarray | None = None, *,
                  threshold: str | float = 'otsu',
                  tolerance: int = 0) -> dict[str, float | int]:
  """All metrics of one probability map.

  Args:
    prob: float [H, W] probabilities in [0, 1].
    gt: [H, W] ground truth (> 0.5 = vessel).
    valid: optional [H, W] mask (nonzero = real pixel, 0 = padding).
    threshold: 'otsu' (per image, the paper's choice) or a float (p > t).
    tolerance: ground-truth dilation radius for the confusion counts and
      clDice's Tprec (0 = none; 1 = the 3x3 ellipse used for centreline GT).
  Returns:
    dict with the floats `METRIC_NAMES` (auc acc sen spe dice iou kappa fdr
    gmean cldice), the int counts tp fp fn tn and `SKELETON_KEYS`, and
    'threshold' (float, probability units).
  """
  prob, gt_b, valid_b = _prepare(prob, gt, valid)
  pred, thr = binarize(prob, threshold, valid_b)
  dilated = dilate(gt_b, tolerance)
  maps = _maps(pred, gt_b, valid_b, dilated)
  counts = {k: int(np.count_nonzero(maps[k])) for k in COUNT_KEYS}
  auc = roc_auc(prob[valid_b], gt_b[valid_b],
                single_class_value=single_class_auc(counts['fp'],
                                                     counts['fn']))
  skel = _skeleton_counts(pred, gt_b, dilated)
  out: dict[str, Any] = {'auc': auc}
  out.update(scores_from_counts(**counts))
  out['cldice'] = cldice_from_counts(**skel)
  out = {name: float(out[name]) for name in METRIC_NAMES}
  out.update(counts)
  out.update(skel)
  out['threshold'] = float(thr)
  return out


def evaluate_images(probs: Sequence[np.ndarray], gts: Sequence[np.ndarray],
                    valids: Sequence[np.ndarray | None] | None = None,
                    ids: Sequence[str] | None = None, *,
                    threshold: str | float = 'otsu',
                    tolerance: int = 0) -> list[dict[str, Any]]:
  """`image_metrics` over a set of images.

  Args:
    probs, gts: sequences of [H_i, W_i]; valids: None or a sequence of masks;
    ids: optional names (default '0', '1', ...).
  Returns:
    list of per-image dicts, each with 'id' first.
  """
  n = len(probs)
  if len(gts) != n:
    raise ValueError(f'{n} probability maps but {len(gts)} ground truths')
  if valids is not None and len(valids) != n:
    raise ValueError(f'{n} probability maps but {len(valids)} valid masks')
  if ids is None:
    ids = [str(i) for i in range(n)]
  elif len(ids) != n:
    raise ValueError(f'{n} probability maps but {len(ids)} ids')
  results = []
  for i in range(n):
    valid = None if valids is None else valids[i]
    try:
      m = image_metrics(probs[i], gts[i], valid, threshold=threshold,
                        tolerance=tolerance)
    except ValueError as e:
      raise ValueError(f'image {ids[i]!r}: {e}') from None
    results.append({'id': str(ids[i]), **m})
  return results


# ------------------------------------------------------------- summaries ---

def pooled_metrics(per_image: Sequence[Mapping[str, Any]], *,
                   auc: float | None = None) -> dict[str, float | int]:
  """Metrics of the summed confusion / skeleton counts over all images.

  Args:
    per_image: dicts holding at least `COUNT_KEYS` (and `SKELETON_KEYS` for
      clDice).
    auc: the pooled AUC (from `roc_auc` over `valid_pixels`); the counts alone
      cannot give it. None leaves 'auc' out.
  Returns:
    dict with the metric names (auc only if given; cldice only if skeleton
    counts are present) followed by the summed counts.
  """
  if not per_image:
    raise ValueError('no per-image results to pool')
  for i, r in enumerate(per_image):
    missing = [k for k in COUNT_KEYS if k not in r]
    if missing:
      raise ValueError(f'per-image result {r.get("id", i)!r} lacks keys '
                       f'{missing}')
  counts = {k: int(sum(int(r[k]) for r in per_image)) for k in COUNT_KEYS}
  out: dict[str, Any] = {}
  if auc is not None:
    out['auc'] = float(auc)
  out.update(scores_from_counts(**counts))
  has_skel = all(all(k in r for k in SKELETON_KEYS) for r in per_image)
  skel = {}
  if has_skel:
    skel = {k: int(sum(int(r[k]) for r in per_image)) for k in SKELETON_KEYS}
    out['cldice'] = cldice_from_counts(**skel)
  out = {k: float(out[k]) for k in METRIC_NAMES if k in out}
  out.update(counts)
  out.update(skel)
  return out


def summarize(per_image: Sequence[Mapping[str, Any]], *,
              pooled_auc: float | None = None) -> dict[str, Any]:
  """Mean / std over images, pooled metrics, and the per-image list.

  The std is the population std (ddof=0), as printed by the reference code.

  Args:
    per_image: list of `image_metrics` dicts (optionally with 'id').
    pooled_auc: AUC over all valid pixels of the set (see `pooled_metrics`).
  Returns:
    {'summary': {metric: {'mean': float, 'std': float}} for the metrics of
    `METRIC_NAMES` present in every image, 'pooled': `pooled_metrics(...)`,
    'per_image': [dict, ...]} with plain Python numbers (JSON-ready).
  """
  if not per_image:
    raise ValueError('no per-image results to summarize')
  summary = {}
  for name in METRIC_NAMES:
    if not all(name in r for r in per_image):
      continue
    values = np.array([float(r[name]) for r in per_image], np.float64)
    if not np.isfinite(values).all():
      bad = [r.get('id', i) for i, r in enumerate(per_image)
             if not math.isfinite(float(r[name]))]
      raise ValueError(f'metric {name!r} is not finite for images {bad}')
    summary[name] = {'mean': float(values.mean()), 'std': float(values.std())}
  return {
      'summary': summary,
      'pooled': pooled_metrics(per_image, auc=pooled_auc),
      'per_image': [_plain(r) for r in per_image],
  }


def _plain(record: Mapping[str, Any]) -> dict[str, Any]:
  """Converts NumPy scalars to Python numbers (for JSON)."""
  out = {}
  for k, v in record.items():
    if isinstance(v, np.generic):
      v = v.item()
    out[k] = v
  return out
