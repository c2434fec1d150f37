"""Vessel biomarkers of a binary OCTA vessel mask, in physical units.

`measure(mask, spacing_um)` returns the quantities OCTA studies report
(definitions, units and sources: docs/biomarkers.md):

  vad                   vessel area density: vessel pixels / analysed pixels (0-1)
  vsd_mm_per_mm2        vessel (skeleton) length density: centreline length / area
  vdi_um                vessel diameter index: vessel area / centreline length
  mean_diameter_um, median_diameter_um
                        over segments of each one's diameter: 2 x the distance
                        transform along its centreline, minus one pixel
  tortuosity            mean over segments of path length / chord
  segments, mean_segment_length_mm, median_segment_length_mm
  branch_points_per_mm2 junctions of the centreline graph / area
  fractal_dimension, fd_r2
                        box-counting dimension of the vessel map and its fit's R^2
  area_mm2, vessel_area_mm2, skeleton_length_mm
                        what the densities divide
Without a spacing every length is in pixels and the names say so
(`vsd_px_per_px2`, `vdi_px`, ...). `region(shape, spacing_um, roi_mm)` is the
analysed area: the whole image, a centred disc or a centred annulus.

Pipeline: specks below `min_object_px` are removed (8-connectivity), the rest
is skeletonised (scikit-image, Zhang's 8-connected thinning), the skeleton
becomes a graph of segments and junctions (skan), spurs no longer than the
vessel is wide at their junction are pruned once, and each segment's length
is that of its pixel chain (diagonal steps sqrt 2) after a 5-pixel moving
average, which takes the staircase out of oblique and curved vessels.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import skan
from scipy import ndimage
from skimage.morphology import skeletonize

from cosnet_jax.errors import UserError

# Connected vessel pieces smaller than this (pixels) are specks, not vessels.
MIN_OBJECT_PX = 10
# Moving-average half width (pixels) of the centreline before its length is taken.
SMOOTH_HALF_WIDTH = 2
# Segments shorter than this (pixels) give no tortuosity: their chord is a
# few pixels and its rounding alone moves the ratio by tenths.
MIN_TORTUOSITY_PX = 10
# 8-connectivity for specks, junction clusters and the box count's ROI.
EIGHT = np.ones((3, 3), bool)


class MaskError(UserError):
  """A mask that cannot be measured (not binary, not 2-D); the message names it."""


@dataclasses.dataclass(frozen=True)
class Units:
  """Column-name suffixes and the factors from pixels to them."""
  length: str          # 'mm' or 'px'
  small: str           # 'um' or 'px' (diameters)
  per_area: str        # 'per_mm2' or 'per_px2'
  to_length: float     # pixels -> length unit
  to_small: float      # pixels -> small unit
  to_area: float       # pixels -> area unit (length unit squared)


def units(spacing_um: float | None) -> Units:
  if spacing_um is None:
    return Units('px', 'px', 'per_px2', 1.0, 1.0, 1.0)
  if not spacing_um > 0:
    raise UserError(f'spacing {spacing_um}: expected > 0 micrometres per pixel')
  mm = spacing_um / 1000.0
  return Units('mm', 'um', 'per_mm2', mm, spacing_um, mm * mm)


def column_names(spacing_um: float | None) -> list[str]:
  """The measure() keys in table order (units in the names)."""
  u = units(spacing_um)
  return ['vad', f'vsd_{u.length}_{u.per_area}', f'vdi_{u.small}',
          f'mean_diameter_{u.small}', f'median_diameter_{u.small}', 'tortuosity',
          'segments', f'mean_segment_length_{u.length}',
          f'median_segment_length_{u.length}', f'branch_points_{u.per_area}',
          'fractal_dimension', 'fd_r2', f'area_{u.length}2', f'vessel_area_{u.length}2',
          f'skeleton_length_{u.length}']


def region(shape: tuple[int, int], spacing_um: float | None = None,
           roi_mm: tuple[float, ...] | None = None) -> np.ndarray:
  """bool [H, W]: the analysed pixels.

  roi_mm: None (the whole image), (d,) a centred disc of diameter d mm, or
  (d_in, d_out) the annulus between two centred circles. Pixels whose centre
  lies inside count.
  """
  h, w = shape
  if roi_mm is None:
    return np.ones(shape, bool)
  if spacing_um is None:
    raise UserError('a region in mm (--roi_mm) needs the pixel spacing (--spacing_um or '
                    '--fov_mm)')
  d = [float(x) for x in roi_mm]
  if len(d) not in (1, 2) or any(x < 0 for x in d) or (len(d) == 2 and d[0] >= d[1]):
    raise UserError(f'--roi_mm {roi_mm}: expected a diameter D or INNER,OUTER diameters '
                    '(mm, inner < outer)')
  yy, xx = np.mgrid[:h, :w]
  r_mm = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) * spacing_um / 1000.0
  inside = r_mm <= d[-1] / 2
  return inside & (r_mm >= d[0] / 2) if len(d) == 2 else inside


def as_binary(mask: np.ndarray, name: str = 'mask') -> np.ndarray:
  """bool [H, W] from a {0, v} image (any single non-zero value v) or a bool array.

  Raises:
    MaskError naming `name` for more than two values or not 2-D.
  """
  m = np.asarray(mask)
  if m.ndim == 3 and m.shape[-1] in (1, 3, 4) and all(
      np.array_equal(m[..., 0], m[..., c]) for c in range(1, min(m.shape[-1], 3))):
    m = m[..., 0]
  if m.ndim != 2:
    raise MaskError(f'{name}: expected a 2-D mask, got shape {np.shape(mask)}')
  if m.dtype == bool:
    return m
  values = np.unique(m)
  if len(values) > 2 or (len(values) == 2 and values[0] != 0):
    shown = ', '.join(f'{v:g}' for v in values[:5]) + (', ...' if len(values) > 5 else '')
    raise MaskError(f'{name}: not a binary mask ({len(values)} values: {shown}); give '
                    'masks of 0 and one other value (cosnet-predict writes 0 / 255), or '
                    'scans with --model')
  return m != 0


def remove_specks(mask: np.ndarray, min_px: int = MIN_OBJECT_PX) -> np.ndarray:
  """mask without its 8-connected pieces of fewer than `min_px` pixels."""
  if min_px <= 1 or not mask.any():
    return mask
  labels, n = ndimage.label(mask, EIGHT)
  sizes = np.bincount(labels.ravel(), minlength=n + 1)
  keep = sizes >= min_px
  keep[0] = False
  return keep[labels]


def _smoothed_length(coords: np.ndarray, half: int = SMOOTH_HALF_WIDTH) -> float:
  """Length (pixels) of a pixel chain [n, 2] after a moving average of
  2 * half + 1 points (fewer near the ends; the end points stay)."""
  n = len(coords)
  if n < 2:
    return 0.0
  c = np.asarray(coords, np.float64)
  if n > 2 and half > 0:
    cs = np.concatenate([np.zeros((1, 2)), np.cumsum(c, axis=0)])
    k = np.arange(n)
    r = np.minimum(np.minimum(k, n - 1 - k), half)
    c = (cs[k + r + 1] - cs[k - r]) / (2 * r + 1)[:, None]
  return float(np.sum(np.linalg.norm(np.diff(c, axis=0), axis=1)))


@dataclasses.dataclass
class Graph:
  """The centreline graph of a mask, after spur pruning (pixel units)."""
  skeleton: np.ndarray        # bool [H, W]
  lengths: np.ndarray         # [segments] smoothed path length
  chords: np.ndarray          # [segments] distance between the two ends
  diameters: np.ndarray       # [segments] mean of 2 * dist - 1 along the path
  on_border: np.ndarray       # [segments] bool: touches the image / region border
  junctions: int              # clusters of skeleton pixels with 3+ neighbours


def centreline(mask: np.ndarray, dist: np.ndarray, inside: np.ndarray) -> Graph:
  """Skeleton, pruned segments and junctions of a cleaned mask (see module doc).

  dist: the Euclidean distance transform of the mask (pixels to background).
  """
  skel = skeletonize(mask)
  if skel.sum() < 2:   # nothing, or one pixel: no segment
    return Graph(skel, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, bool), 0)
  graph = skan.Skeleton(skel)
  if graph.n_paths:
    summary = skan.summarize(graph, separator='_')
    # Spurs: junction-to-end branches no longer than the vessel is wide at
    # the junction (a thinning artefact of a bump in the vessel's edge).
    src = summary[['image_coord_src_0', 'image_coord_src_1']].to_numpy(int)
    dst = summary[['image_coord_dst_0', 'image_coord_dst_1']].to_numpy(int)
    deg = np.zeros(skel.shape, int)
    deg[tuple(graph.coordinates.astype(int).T)] = graph.degrees
    junction_end = np.where((deg[tuple(src.T)] >= 3)[:, None], src, dst)
    width = 2.0 * dist[tuple(junction_end.T)]
    spur = (summary['branch_type'].to_numpy() == 1) & (
        summary['branch_distance'].to_numpy() <= width)
    if spur.any() and not spur.all():
      graph = graph.prune_paths(np.flatnonzero(spur))
      skel = np.asarray(graph.skeleton_image, bool)
  coords = graph.coordinates.astype(int) if graph.n_paths else np.zeros((0, 2), int)
  deg = np.zeros(skel.shape, int)
  if len(coords):
    deg[tuple(coords.T)] = graph.degrees
  _, junctions = ndimage.label(deg >= 3, EIGHT)
  edge = ~ndimage.binary_erosion(inside, EIGHT, border_value=0)
  lengths, chords, diameters, border = [], [], [], []
  for i in range(graph.n_paths):
    path = graph.path_coordinates(i).astype(int)
    if len(path) < 2:
      continue
    lengths.append(_smoothed_length(path))
    chords.append(float(np.hypot(*(path[-1] - path[0]))))
    # A pixel whose centre is d from the nearest background centre lies on a
    # chord of 2d - 1 vessel pixels: a 1-pixel vessel measures 1.
    diameters.append(float(np.mean(2.0 * dist[tuple(path.T)] - 1.0)))
    border.append(bool(edge[tuple(path.T)].any()))
  return Graph(skel, np.array(lengths), np.array(chords), np.array(diameters),
               np.array(border, bool), int(junctions))


def box_counting(mask: np.ndarray, min_box: int = 2) -> tuple[float, float]:
  """(fractal dimension, R^2): the slope of log N(s) against log(1 / s).

  N(s) is the number of s x s boxes holding a vessel pixel, averaged over the
  four grids anchored at the image's corners (so a 90-degree rotation or a
  flip gives the same counts), for the box sizes s = min_box, 2 min_box, 4
  min_box, ... up to a quarter of the shorter side (at least 3 sizes).
  """
  h, w = mask.shape
  largest = min(h, w) // 4
  if not mask.any() or largest < 4 * min_box:
    return float('nan'), float('nan')
  sizes = min_box * 2 ** np.arange(int(math.log2(largest / min_box)) + 1)
  counts = []
  for s in sizes:
    ph, pw = -h % s, -w % s
    n = 0.0
    for top, left in ((0, 0), (ph, 0), (0, pw), (ph, pw)):
      padded = np.pad(mask, ((top, ph - top), (left, pw - left)))
      n += padded.reshape(padded.shape[0] // s, s, -1, s).any(axis=(1, 3)).sum()
    counts.append(n / 4)
  x, y = np.log(1.0 / sizes), np.log(counts)
  slope, intercept = np.polyfit(x, y, 1)
  residual = y - (slope * x + intercept)
  total = np.sum((y - y.mean()) ** 2)
  r2 = 1.0 - np.sum(residual ** 2) / total if total > 0 else float('nan')
  return float(slope), float(r2)


def measure(mask: np.ndarray, spacing_um: float | None = None, *,
            roi_mm: tuple[float, ...] | None = None, min_object_px: int = MIN_OBJECT_PX,
            name: str = 'mask') -> dict[str, float]:
  """The biomarkers of one vessel mask (module doc; column_names gives the keys).

  mask: [H, W] binary (bool, or 0 and one other value).
  spacing_um: micrometres per pixel; None reports lengths in pixels.
  roi_mm: analysed region (`region`); None = the whole image.
  An empty mask (no vessel in the region) gives densities 0 and NaN for the
  quantities it cannot define (diameters, tortuosity, fractal dimension).

  Raises:
    MaskError / UserError naming `name`.
  """
  u = units(spacing_um)
  binary = as_binary(mask, name)
  inside = region(binary.shape, spacing_um, roi_mm)
  vessels = remove_specks(binary, min_object_px) & inside
  area_px = float(inside.sum())
  dist = ndimage.distance_transform_edt(vessels)
  graph = centreline(vessels, dist, inside)
  length_px = float(graph.lengths.sum())
  vessel_px = float(vessels.sum())
  nan = float('nan')
  diam = graph.diameters
  interior = ~graph.on_border & (graph.lengths >= MIN_TORTUOSITY_PX) & (graph.chords > 0)
  fd, r2 = box_counting(vessels) if vessel_px else (nan, nan)
  values = [
      vessel_px / area_px if area_px else nan,
      length_px * u.to_length / (area_px * u.to_area) if area_px else nan,
      vessel_px / length_px * u.to_small if length_px else nan,
      float(diam.mean()) * u.to_small if len(diam) else nan,
      float(np.median(diam)) * u.to_small if len(diam) else nan,
      float(np.mean(graph.lengths[interior] / graph.chords[interior]))
      if interior.any() else nan,
      float(len(graph.lengths)),
      float(graph.lengths.mean()) * u.to_length if len(graph.lengths) else nan,
      float(np.median(graph.lengths)) * u.to_length if len(graph.lengths) else nan,
      graph.junctions / (area_px * u.to_area) if area_px else nan,
      fd, r2,
      area_px * u.to_area, vessel_px * u.to_area, length_px * u.to_length,
  ]
  return dict(zip(column_names(spacing_um), values))
