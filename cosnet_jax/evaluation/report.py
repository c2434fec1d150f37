"""Evaluation reports: metrics.json / metrics.md / roc.png / overlay PNGs.

Files written by `write_report(out_dir, ...)`:

* ``metrics.json`` (refined output) and ``metrics_coarse.json`` (coarse output,
  when given): ``{"summary": {metric: {"mean", "std"}}, "pooled": {metric: ..,
  "tp": .., ...}, "per_image": [{"id": .., metric: .., ...}], "settings":
  {"threshold": .., "tolerance": .., "num_images": ..}}``.
* ``metrics.md``: mean ± std table in the paper's column order (one row per
  output: coarse, refined), then the pooled table.
* ``roc.png``: pooled ROC curves (all valid test pixels) of both outputs.
* ``overlays/<id>.png``: image | ground truth | prediction | errors side by
  side (errors: TP white, FP red, FN green, TN black), cropped to the valid
  area.

Also single-image writers for `predict`: `save_overlay` (image with the
predicted vessels tinted), `save_probability_png`, `save_mask_png`.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from cosnet_jax.evaluation import metrics as metrics_lib

# Column titles of metrics.md, in the paper's order.
DISPLAY_NAMES = {
    'auc': 'AUC', 'acc': 'ACC', 'sen': 'SEN', 'spe': 'SPE', 'dice': 'Dice',
    'iou': 'IoU', 'kappa': 'Kappa', 'fdr': 'FDR', 'gmean': 'G-mean',
    'cldice': 'clDice',
}
# Colours of the error panel (RGB uint8).
TP_COLOR = (255, 255, 255)
FP_COLOR = (255, 0, 0)
FN_COLOR = (0, 255, 0)
# Grey gap in pixels between the panels of an overlay.
PANEL_GAP = 4
# Most points drawn per ROC curve (pooled curves have up to millions).
MAX_ROC_POINTS = 4000


# --------------------------------------------------------------- images ---

def _squeeze_2d(array: np.ndarray, name: str) -> np.ndarray:
  """[H, W] or [H, W, 1] -> [H, W]; anything else raises naming `name`."""
  arr = np.asarray(array)
  if arr.ndim == 3 and arr.shape[-1] == 1:
    arr = arr[..., 0]
  if arr.ndim != 2:
    raise ValueError(f'{name} must have shape [H, W]; got {arr.shape}')
  return arr


def _to_uint8(img: np.ndarray, name: str) -> np.ndarray:
  """[H, W] float in [0, 1] (or uint8, or bool) -> uint8 [H, W]."""
  arr = _squeeze_2d(img, name)
  if arr.dtype == np.uint8:
    return arr
  if arr.dtype == bool:
    return arr.astype(np.uint8) * 255
  return metrics_lib.probability_to_uint8(arr)


def _gray_rgb(u8: np.ndarray) -> np.ndarray:
  return np.repeat(u8[:, :, None], 3, axis=2)


def _write_png(path: str | os.PathLike, rgb_or_gray: np.ndarray) -> None:
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.ascontiguousarray(rgb_or_gray)).save(
      path, format='PNG', compress_level=1)


def save_probability_png(path: str | os.PathLike, prob: np.ndarray) -> None:
  """Writes prob [H, W] in [0, 1] as 16-bit grey: value / 65535 = p (rounded)."""
  prob = np.clip(np.asarray(_squeeze_2d(prob, 'prob'), np.float64), 0, 1)
  _write_png(path, np.round(prob * 65535).astype(np.uint16))


def save_mask_png(path: str | os.PathLike, mask: np.ndarray) -> None:
  """Writes a binary mask [H, W] (nonzero = vessel) as {0, 255} 8-bit grey."""
  mask = _squeeze_2d(mask, 'mask')
  _write_png(path, (mask > 0).astype(np.uint8) * 255)


def tinted_overlay(image: np.ndarray, mask: np.ndarray, *,
                   color: tuple[int, int, int] = (255, 0, 0),
                   alpha: float = 0.5) -> np.ndarray:
  """The image in grey with the mask's pixels blended towards `color`.

  Args:
    image: [H, W] float in [0, 1] or uint8; mask: [H, W] (nonzero = vessel).
  Returns:
    uint8 [H, W, 3].
  """
  rgb = _gray_rgb(_to_uint8(image, 'image')).astype(np.float32)
  mask = _squeeze_2d(mask, 'mask')
  if mask.shape != rgb.shape[:2]:
    raise ValueError(f'mask shape {mask.shape} != image shape {rgb.shape[:2]}')
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f'alpha must be in [0, 1]; got {alpha}')
  sel = mask > 0
  rgb[sel] = (1 - alpha) * rgb[sel] + alpha * np.asarray(color, np.float32)
  return np.rint(rgb).astype(np.uint8)


def save_overlay(path: str | os.PathLike, image: np.ndarray, mask: np.ndarray,
                 *, color: tuple[int, int, int] = (255, 0, 0),
                 alpha: float = 0.5) -> None:
  """Writes `tinted_overlay(image, mask)` as an RGB PNG [H, W, 3]."""
  _write_png(path, tinted_overlay(image, mask, color=color, alpha=alpha))


def error_panel(maps: Mapping[str, np.ndarray]) -> np.ndarray:
  """uint8 [H, W, 3] from `metrics.confusion_maps`: TP white, FP red, FN green.
  """
  out = np.zeros(maps['tp'].shape + (3,), np.uint8)
  out[maps['tp']] = TP_COLOR
  out[maps['fp']] = FP_COLOR
  out[maps['fn']] = FN_COLOR
  return out


def comparison_panels(image: np.ndarray, gt: np.ndarray, pred: np.ndarray,
                      valid: np.ndarray | None = None, *,
                      tolerance: int = 0) -> np.ndarray:
  """image | ground truth | prediction | errors, side by side.

  Args:
    image: [H, W] float in [0, 1] (or uint8); gt: [H, W] (> 0.5 = vessel);
    pred: [H, W] binary prediction; valid: optional [H, W] mask: the panels
      are cropped to its bounding box (the unpadded image).
  Returns:
    uint8 [h, 4 * w + 3 * PANEL_GAP, 3] with (h, w) the valid extent.
  """
  maps = metrics_lib.confusion_maps(pred, gt, valid, tolerance=tolerance)
  img_u8 = _to_uint8(image, 'image')
  if img_u8.shape != maps['tp'].shape:
    raise ValueError(f'image shape {img_u8.shape} != gt shape '
                     f'{maps["tp"].shape}')
  gt_u8 = _to_uint8(np.asarray(_squeeze_2d(gt, 'gt')) > 0.5, 'gt')
  pred_b = maps['tp'] | maps['fp']
  panels = [_gray_rgb(img_u8), _gray_rgb(gt_u8),
            _gray_rgb(pred_b.astype(np.uint8) * 255), error_panel(maps)]
  if valid is not None:
    v = _squeeze_2d(valid, 'valid') > 0
    rows = np.flatnonzero(v.any(axis=1))
    cols = np.flatnonzero(v.any(axis=0))
    panels = [p[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] for p in panels]
  h = panels[0].shape[0]
  gap = np.full((h, PANEL_GAP, 3), 128, np.uint8)
  row = [panels[0]]
  for p in panels[1:]:
    row += [gap, p]
  return np.concatenate(row, axis=1)


def _safe_name(image_id: str, index: int) -> str:
  name = re.sub(r'[^A-Za-z0-9._-]+', '_', str(image_id)).strip('._')
  return name or f'image_{index}'


# ------------------------------------------------------------- tables ---

def _fmt(x: float) -> str:
  return f'{x:.4f}'


def markdown_table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
  """Markdown mean ± std and pooled tables, one row per output.

  Args:
    summaries: {row label: `metrics.summarize(...)` dict}, e.g.
      {'coarse': ..., 'refined': ...}.
  Returns:
    Markdown text.
  """
  names = [m for m in metrics_lib.METRIC_NAMES
           if all(m in s['summary'] for s in summaries.values())]
  header = '| Output | ' + ' | '.join(DISPLAY_NAMES[m] for m in names) + ' |'
  rule = '|---|' + '---|' * len(names)
  lines = ['## Mean ± std over test images', '', header, rule]
  for label, s in summaries.items():
    cells = [f"{_fmt(s['summary'][m]['mean'])} ± {_fmt(s['summary'][m]['std'])}"
             for m in names]
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  pooled_names = [m for m in metrics_lib.METRIC_NAMES
                  if all(m in s['pooled'] for s in summaries.values())]
  lines += ['', '## Pooled over all test pixels', '',
            '| Output | ' + ' | '.join(DISPLAY_NAMES[m] for m in pooled_names)
            + ' |', '|---|' + '---|' * len(pooled_names)]
  for label, s in summaries.items():
    lines.append(f'| {label} | ' + ' | '.join(
        _fmt(s['pooled'][m]) for m in pooled_names) + ' |')
  return '\n'.join(lines) + '\n'


# ------------------------------------------------------------------ ROC ---

def _thin_curve(fpr: np.ndarray, tpr: np.ndarray, max_points: int):
  if fpr.size <= max_points:
    return fpr, tpr
  idx = np.unique(np.r_[np.rint(np.linspace(0, fpr.size - 1, max_points))
                        .astype(np.int64), fpr.size - 1])
  return fpr[idx], tpr[idx]


def plot_roc(path: str | os.PathLike,
             curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], *,
             size_px: int = 600) -> None:
  """Writes ROC curves to a PNG of size_px x size_px (matplotlib, Agg).

  Args:
    curves: {label: (fpr [K], tpr [K], auc)}.
  """

  dpi = 100
  fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, 1, 1)
  for label, (fpr, tpr, auc) in curves.items():
    f, t = _thin_curve(np.asarray(fpr), np.asarray(tpr), MAX_ROC_POINTS)
    ax.plot(f, t, lw=1.5, label=f'{label} (AUC = {auc:.4f})')
  ax.plot([0, 1], [0, 1], color='0.6', lw=0.8, ls='--')
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1.0)
  ax.set_xlabel('False positive rate')
  ax.set_ylabel('True positive rate')
  ax.set_title('ROC (pooled over test pixels)')
  if curves:
    ax.legend(loc='lower right')
  else:
    ax.text(0.5, 0.5, 'no ROC: the labels hold a single class',
            ha='center', va='center')
  fig.tight_layout()
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=dpi)


# --------------------------------------------------------------- report ---

def _check_lengths(n: int, **seqs) -> None:
  for name, seq in seqs.items():
    if seq is not None and len(seq) != n:
      raise ValueError(f'{name} has {len(seq)} entries; expected {n} '
                       '(one per result)')


def _summary_and_curve(results, probs, gts, valids):
  scores, labels = metrics_lib.valid_pixels(probs, gts, valids)
  fp = sum(int(r['fp']) for r in results)
  fn = sum(int(r['fn']) for r in results)
  auc = metrics_lib.roc_auc(
      scores, labels, single_class_value=metrics_lib.single_class_auc(fp, fn))
  curve = None
  if 0 < labels.sum() < labels.size:
    fpr, tpr, _ = metrics_lib.roc_curve(scores, labels)
    curve = (fpr, tpr, auc)
  return metrics_lib.summarize(results, pooled_auc=auc), curve


def write_report(out_dir: str | os.PathLike,
                 results: Sequence[Mapping[str, Any]], *,
                 images: Sequence[np.ndarray],
                 gts: Sequence[np.ndarray],
                 probs: Sequence[np.ndarray],
                 ids: Sequence[str] | None = None,
                 valids: Sequence[np.ndarray | None] | None = None,
                 coarse: Sequence[Mapping[str, Any]] | None = None,
                 coarse_probs: Sequence[np.ndarray] | None = None,
                 threshold: str | float = 'otsu',
                 tolerance: int = 0,
                 overlays: bool = True,
                 label: str = 'refined') -> dict[str, dict[str, Any]]:
  """Writes metrics.json, metrics_coarse.json, metrics.md, roc.png, overlays/.

  Args:
    out_dir: output folder (created).
    results: per-image metric dicts of the refined output
      (`metrics.evaluate_images`), one per image, in the order of `images`.
    images: [H, W] input images in [0, 1] (for the overlays).
    gts: [H, W] ground truths; probs: [H, W] refined probabilities.
    ids: image names (default: results' 'id', else the index); overlay file
      names are derived from them.
    valids: optional [H, W] masks (0 = padding); overlays are cropped to them.
    coarse: optional per-image metric dicts of the coarse (stage-1) output,
      with `coarse_probs` its probability maps (both or neither).
    threshold, tolerance: the settings `results` were computed with; the
      overlays binarise `probs` the same way.
    overlays: write overlays/<id>.png.
    label: the final output's row name in metrics.md and the ROC legend
      ('coarse' for a run without refinement, whose final output is stage 1).
  Returns:
    {'refined': summary, 'coarse': summary or None} (`metrics.summarize`).
  """
  n = len(results)
  if n == 0:
    raise ValueError('write_report: no results')
  _check_lengths(n, images=images, gts=gts, probs=probs, ids=ids,
                 valids=valids, coarse=coarse, coarse_probs=coarse_probs)
  if (coarse is None) != (coarse_probs is None):
    raise ValueError('write_report: pass both coarse and coarse_probs, or '
                     'neither')
  if ids is None:
    ids = [str(r.get('id', i)) for i, r in enumerate(results)]
  ids = [str(i) for i in ids]
  results = [{'id': ids[i], **{k: v for k, v in r.items() if k != 'id'}}
             for i, r in enumerate(results)]
  settings = {'threshold': (threshold if isinstance(threshold, str)
                            else float(threshold)),
              'tolerance': int(tolerance),
              'num_images': n}
  out = Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)

  refined, refined_curve = _summary_and_curve(results, probs, gts, valids)
  refined['settings'] = settings
  (out / 'metrics.json').write_text(json.dumps(refined, indent=1) + '\n')
  tables = {}
  curves = {}
  coarse_summary = None
  if coarse is not None:
    coarse = [{'id': ids[i], **{k: v for k, v in r.items() if k != 'id'}}
              for i, r in enumerate(coarse)]
    coarse_summary, coarse_curve = _summary_and_curve(
        coarse, coarse_probs, gts, valids)
    coarse_summary['settings'] = settings
    (out / 'metrics_coarse.json').write_text(
        json.dumps(coarse_summary, indent=1) + '\n')
    tables['coarse'] = coarse_summary
    if coarse_curve is not None:
      curves['coarse'] = coarse_curve
  if label in tables:
    raise ValueError(f'write_report: label {label!r} is also the coarse row')
  tables[label] = refined
  if refined_curve is not None:
    curves[label] = refined_curve

  thr_text = (f'Otsu per image' if isinstance(threshold, str)
              else f'{float(threshold):g}')
  md = (f'# Evaluation ({n} images; threshold: {thr_text}; '
        f'tolerance: {int(tolerance)})\n\n' + markdown_table(tables))
  (out / 'metrics.md').write_text(md)
  # Always written; a set whose labels hold a single class has no curve.
  plot_roc(out / 'roc.png', curves)

  if overlays:
    used = set()
    for i in range(n):
      valid = None if valids is None else valids[i]
      pred, _ = metrics_lib.binarize(probs[i], threshold, valid)
      panel = comparison_panels(images[i], gts[i], pred, valid,
                                tolerance=tolerance)
      name = _safe_name(ids[i], i)
      while name in used:
        name = f'{name}_{i}'
      used.add(name)
      _write_png(out / 'overlays' / f'{name}.png', panel)
  return {'refined': refined, 'coarse': coarse_summary}
