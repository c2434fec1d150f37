"""Procedural OCTA en-face angiograms with vessel labels (the embedded default dataset).

One image (``generate_octa``) is built from:
  * a foveal avascular zone (FAZ): an irregular dark disc near the centre;
  * vessel trees that enter from the border, run towards the fovea, curve
    around the FAZ and branch with decreasing calibre (Murray-like radius
    split, slow taper), plus thin side sprouts off the large vessels;
  * an unlabelled capillary bed: warped Voronoi cell edges with random
    drop-out (the fine meshwork seen between vessels in real OCTA);
  * OCTA-like multiplicative speckle, background flow noise, vignetting,
    per-row gain noise, horizontal motion lines and an occasional shadow
    (projection / acquisition artefacts).
Labels: ``thick`` = vessels of radius >= THICK_RADIUS px (at 304 px), ``thin`` =
the thinner tree vessels (capillary calibre), ``mask`` = thick | thin. The
unlabelled capillary bed plays the role of the capillaries that large-vessel
ground truths (e.g. OCTA-500 GT_LargeVessel) leave out. The vessel fraction of
``mask`` is about 8-15 % (mean ~12 %) at 304 px.

Everything is a pure function of the seed; all per-pixel work is vectorised
numpy (tree growth is a Python loop over ~1e3 centreline points).
"""
import heapq
import math

import numpy as np
from scipy import ndimage

THICK_RADIUS = 1.4  # px at 304 px; vessels at least this thick are 'thick'.
_STEP = 0.7  # centreline sampling step (px)


def _smooth_noise(rng, shape, sigma):
  """Zero-mean unit-std smooth Gaussian noise float32 [H, W]."""
  n = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, truncate=2.5)
  return n / (n.std() + 1e-6)


_CELL = 4.0  # occupancy grid cell (px) used to stop vessels that run into others


def _grow_thick(rng, size, fovea, faz_r, scale):
  """Grows the large vessels (largest first) that steer around the FAZ.

  A coarse occupancy grid stops a branch that runs into another branch, so the
  trees fill the field without piling up.

  Returns:
    (points float [P, 3] of (y, x, r) every _STEP px,
     origins float [M, 4] of (y, x, angle, r) where thin vessels start,
     occupancy int32 [G, G] (branch id + 1 per cell, 0 = free)).
  """
  pts, origins = [], []
  g = int(size / _CELL) + 4
  occ = [[0] * g for _ in range(g)]
  n_roots = int(rng.integers(5, 8))
  phis = (np.arange(n_roots) + rng.uniform(0.15, 0.85, n_roots)) * (2 * np.pi / n_roots)
  phis = phis + rng.uniform(0, 2 * np.pi)
  heap = []
  for i, phi in enumerate(phis):
    far = 0.75 * size
    y0 = min(max(fovea[0] + far * math.sin(phi), -3.0), size + 2.0)
    x0 = min(max(fovea[1] + far * math.cos(phi), -3.0), size + 2.0)
    ang = math.atan2(fovea[0] - y0, fovea[1] - x0) + rng.normal(0, 0.25)
    heapq.heappush(heap, (-rng.uniform(1.9, 3.0) * scale, i + 1, -1, y0, x0, ang, 0))
  thick_r = THICK_RADIUS * scale
  lim = -6.0, size + 6.0
  avoid = faz_r + 12.0 * scale
  next_id = n_roots + 1
  while heap and len(pts) < 5000 * scale:
    neg_r, bid, parent, y, x, ang, depth = heapq.heappop(heap)
    r = -neg_r
    n_steps = int(rng.uniform(220, 320) * scale / _STEP)
    turns = (ndimage.gaussian_filter1d(rng.normal(0, 0.04, n_steps), 10.0) +
             rng.normal(0, 0.0015)).tolist()
    uni = rng.uniform(size=(n_steps, 4)).tolist()
    length = since_branch = since_sprout = 0.0
    next_branch = rng.uniform(25, 60) * scale
    next_sprout = rng.uniform(10, 25) * scale
    side = 1.0
    last_cell = None
    for k in range(n_steps):
      ang += turns[k]
      dy, dx = fovea[0] - y, fovea[1] - x
      d = math.hypot(dy, dx)
      if d < avoid + 4 * r:
        diff = (ang - math.atan2(dy, dx) + math.pi) % (2 * math.pi) - math.pi
        if abs(diff) < 1.7:
          ang += 0.08 if diff >= 0 else -0.08
      if d < faz_r + 4.0 + r:
        break
      y += _STEP * math.sin(ang)
      x += _STEP * math.cos(ang)
      if length > 10 and not (lim[0] < y < lim[1] and lim[0] < x < lim[1]):
        break
      cy, cx = int(y / _CELL) + 2, int(x / _CELL) + 2
      if (cy, cx) != last_cell and 0 <= cy < g and 0 <= cx < g:
        last_cell = (cy, cx)
        owner = occ[cy][cx]
        if owner not in (0, bid, parent) and length > 6 * r + 4:
          break
        for oy in (cy - 1, cy, cy + 1):
          if 0 <= oy < g:
            row = occ[oy]
            for ox in (cx - 1, cx, cx + 1):
              if 0 <= ox < g and row[ox] == 0:
                row[ox] = bid
      r *= 0.9993
      if r < thick_r:
        origins.append((y, x, ang, r))
        break
      pts.append((y, x, r))
      length += _STEP
      since_branch += _STEP
      since_sprout += _STEP
      u = uni[k]
      if since_branch >= next_branch and depth < 8:
        rc = r * (0.5 + 0.3 * u[0])
        r *= 0.9 + 0.08 * u[1]
        sgn = 1.0 if u[2] < 0.5 else -1.0
        child_ang = ang + sgn * (0.5 + 0.7 * u[3])
        if rc >= thick_r:
          heapq.heappush(heap, (-rc, next_id, bid, y, x, child_ang, depth + 1))
          next_id += 1
        else:
          origins.append((y, x, child_ang, rc))
        ang -= sgn * 0.12
        since_branch = 0.0
        next_branch = (25 + 35 * u[0]) * scale
      if since_sprout >= next_sprout:
        side = -side
        origins.append((y, x, ang + side * (0.8 + 0.7 * u[3]), (0.75 + 0.4 * u[2]) * scale))
        since_sprout = 0.0
        next_sprout = (11 + 16 * u[1]) * scale
  return (np.asarray(pts, np.float64).reshape(-1, 3),
          np.asarray(origins, np.float64).reshape(-1, 4),
          np.asarray(occ, np.int32))


def _grow_thin(rng, origins, occ, size, fovea, faz_r, scale, max_len):
  """Grows thin vessels from ``origins`` all at once (vectorised random walks).

  Each walk stops at the FAZ border, when leaving the image or after a random
  length. Returns (points float [P, 3] (y, x, r), child origins [M', 4] taken
  at random points along the walks).
  """
  m = len(origins)
  if m == 0:
    return np.zeros((0, 3)), np.zeros((0, 4))
  n = int(max_len / _STEP)
  turns = ndimage.gaussian_filter1d(rng.normal(0, 0.1, (m, n)), 5.0, axis=1, truncate=2.5)
  ang = origins[:, 2:3] + np.cumsum(turns, axis=1)
  ys = origins[:, :1] + np.cumsum(_STEP * np.sin(ang), axis=1)
  xs = origins[:, 1:2] + np.cumsum(_STEP * np.cos(ang), axis=1)
  rs = origins[:, 3:4] * 0.997 ** np.arange(1, n + 1)[None, :]
  lens = rng.uniform(0.35, 1.0, (m, 1)) * n
  gy = np.clip((ys / _CELL).astype(np.int64) + 2, 0, occ.shape[0] - 1)
  gx = np.clip((xs / _CELL).astype(np.int64) + 2, 0, occ.shape[1] - 1)
  hit = (occ[gy, gx] > 0) & (np.arange(n)[None, :] * _STEP > 8.0 * scale)
  stop = (hit | (np.arange(n)[None, :] >= lens) |
          (np.hypot(ys - fovea[0], xs - fovea[1]) < faz_r + 2.0) |
          (ys < -3) | (ys > size + 2) | (xs < -3) | (xs > size + 2))
  alive = np.cumsum(stop, axis=1) == 0
  pts = np.stack([ys[alive], xs[alive], rs[alive]], 1)
  # One child per walk at a random alive step.
  n_alive = alive.sum(axis=1)
  has = n_alive > 6
  at = (rng.uniform(0.2, 0.9, m) * n_alive).astype(np.int64)
  rows = np.nonzero(has)[0]
  at = at[rows]
  sgn = np.where(rng.uniform(size=len(rows)) < 0.5, -1.0, 1.0)
  child = np.stack([ys[rows, at], xs[rows, at],
                    ang[rows, at] + sgn * rng.uniform(0.5, 1.2, len(rows)),
                    rs[rows, at] * rng.uniform(0.75, 0.95, len(rows))], 1)
  return pts, child[child[:, 3] >= 0.5 * scale]


def _splat_normalised_distance(points, size):
  """Min over centreline points of distance / radius, per pixel.

  Args:
    points: float [P, 3] (y, x, r).
    size: image side S.

  Returns:
    float32 [S, S]; <= 1 inside a vessel (union of discs), inf far away.
  """
  out = np.full(size * size, np.inf, dtype=np.float32)
  if len(points) == 0:
    return out.reshape(size, size)
  halos = np.ceil(1.3 * points[:, 2]).astype(np.int64) + 1
  for halo in np.unique(halos):
    p = points[halos == halo].astype(np.float32)
    off = np.arange(-halo, halo + 1)
    oy, ox = np.meshgrid(off, off, indexing='ij')
    cy = np.rint(p[:, 0]).astype(np.int64)
    cx = np.rint(p[:, 1]).astype(np.int64)
    py = cy[:, None] + oy.ravel()[None, :]
    px = cx[:, None] + ox.ravel()[None, :]
    nd = np.hypot(py - p[:, :1], px - p[:, 1:2]) / p[:, 2:3]
    ok = (py >= 0) & (py < size) & (px >= 0) & (px < size) & (nd < 1.3)
    np.minimum.at(out, (py * size + px)[ok], nd[ok])
  return out.reshape(size, size)


def _argmin0(d):
  """(argmin, min) over axis 0 of a small stack [K, H, W] (faster than argmin(0))."""
  m = d.min(0)
  arg = np.zeros(m.shape, np.int32)
  for k in range(d.shape[0] - 1, -1, -1):
    arg[d[k] == m] = k
  return arg, m


def _capillary_bed(rng, size, scale, yy, xx):
  """Unlabelled capillary meshwork float32 [S, S] in [0, 1].

  Edges of a warped Voronoi diagram of jittered-grid seeds (the two nearest
  seeds are found among the 3x3 grid cells around each pixel), each edge kept
  with p = 0.85 and given a random strength.
  """
  spacing = np.float32(rng.uniform(6.0, 7.5) * scale)
  n = int(size / spacing) + 6
  g = np.arange(n, dtype=np.float32) - np.float32(1.5)
  seed_y = ((g[:, None] + rng.uniform(-0.3, 0.3, (n, n))) * spacing).astype(np.float32).ravel()
  seed_x = ((g[None, :] + rng.uniform(-0.3, 0.3, (n, n))) * spacing).astype(np.float32).ravel()
  warp = np.float32(1.6 * scale)
  qy = yy + warp * _smooth_noise(rng, (size, size), 4 * scale)
  qx = xx + warp * _smooth_noise(rng, (size, size), 4 * scale)
  cell = (np.floor(qy / spacing).astype(np.int32) + 2) * n + (np.floor(qx / spacing).astype(np.int32) + 2)
  offs = np.array([dy * n + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)], np.int32)
  d = np.empty((9, size, size), np.float32)
  for k, off in enumerate(offs):
    gid = cell + off
    d[k] = (qy - seed_y[gid]) ** 2 + (qx - seed_x[gid]) ** 2
  a1, d1 = _argmin0(d)
  np.put_along_axis(d, a1[None], np.inf, 0)
  a2, d2 = _argmin0(d)
  id1 = cell + offs[a1]
  id2 = cell + offs[a2]
  gap = np.sqrt(d2) - np.sqrt(d1)
  lo, hi = np.minimum(id1, id2).astype(np.int64), np.maximum(id1, id2).astype(np.int64)
  table = rng.uniform(size=4 * n * n).astype(np.float32)
  edge_rand = table[(lo * 7919 + hi * 31) % (4 * n * n)]
  keep = edge_rand < 0.85
  strength = 0.6 + 0.4 * ((edge_rand * 13.0) % 1.0)
  line = np.clip(1.0 - gap / np.float32(2.0 * scale), 0.0, 1.0)
  return (line * keep * strength).astype(np.float32)


def generate_octa(rng: np.random.Generator, size: int = 304) -> dict:
  """One synthetic OCTA example.

  Args:
    rng: numpy Generator (the example is a pure function of its state).
    size: side S of the square image (features scale with S / 304).

  Returns:
    dict with 'image' uint8 [S, S] and 'mask', 'thick', 'thin' uint8 [S, S]
    in {0, 1} (mask = thick | thin).
  """
  s = size / 304.0
  yy, xx = np.meshgrid(np.arange(size, dtype=np.float32),
                       np.arange(size, dtype=np.float32), indexing='ij')
  fovea = (size / 2 + rng.normal(0, 14 * s), size / 2 + rng.normal(0, 14 * s))
  faz_r = rng.uniform(14, 24) * s
  theta = np.arctan2(yy - fovea[0], xx - fovea[1])
  rad = np.hypot(yy - fovea[0], xx - fovea[1])
  wobble = sum(rng.uniform(0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
               for k in (2, 3, 5))
  faz_edge = faz_r * (1.0 + wobble)
  in_faz = rad < faz_edge

  thick_pts, origins, occ = _grow_thick(rng, size, fovea, faz_r, s)
  thin_pts, origins = _grow_thin(rng, origins, occ, size, fovea, faz_r, s, 60 * s)
  thin_pts2, _ = _grow_thin(rng, origins, occ, size, fovea, faz_r, s, 35 * s)
  nd_thick = _splat_normalised_distance(thick_pts[::2], size)
  nd_thin = _splat_normalised_distance(np.concatenate([thin_pts, thin_pts2]), size)
  thick = nd_thick <= 1.0
  thin = (nd_thin <= 1.0) & ~thick

  # Signal (flow) levels.
  bed = _capillary_bed(rng, size, s, yy, xx)
  bed_level = rng.uniform(0.55, 0.7)
  near_faz = np.clip((rad - faz_edge) / (18 * s), 0.0, 1.0)
  bed = bed * near_faz
  thick_level = rng.uniform(0.85, 1.0)
  thin_level = rng.uniform(0.75, 0.9)
  p_thick = np.clip((1.25 - nd_thick) / 0.5, 0.0, 1.0)
  p_thin = np.clip((1.25 - nd_thin) / 0.5, 0.0, 1.0)
  background = rng.uniform(0.12, 0.18) * (0.55 + 0.45 * near_faz)
  flow = 1.0 + 0.35 * _smooth_noise(rng, (size, size), 1.2 * s)
  signal = np.maximum.reduce([
      background * np.clip(flow, 0.2, None),
      bed_level * bed,
      thin_level * p_thin,
      thick_level * p_thick,
  ])
  # Projection artefact: faint displaced tail of the large vessels.
  if rng.uniform() < 0.6:
    ghost = ndimage.gaussian_filter(p_thick, 2.0 * s)
    ghost = np.roll(ghost, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), (0, 1))
    signal = np.maximum(signal, 0.25 * ghost)
  # OCTA speckle: multiplicative noise, slightly blurred
  # (std 0.4, weaker inside large vessels, whose flow signal is steadier).
  noise = np.maximum(rng.standard_normal((size, size), dtype=np.float32), -2.2)
  speckle = 1.0 + 0.4 * noise * (1.0 - 0.5 * p_thick)
  img = ndimage.gaussian_filter(signal * speckle, 0.55 * s)
  img = img + 0.025 * rng.standard_normal((size, size)).astype(np.float32)
  # Vignetting.
  cy, cx = size / 2 + rng.normal(0, 30 * s, 2)
  r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.5 * size) ** 2
  img = img * (1.0 - rng.uniform(0.1, 0.3) * r2)
  # Per-row gain noise and horizontal motion lines.
  row_gain = 1.0 + ndimage.gaussian_filter1d(rng.normal(0, 0.06, size), 1.0)
  for _ in range(int(rng.poisson(1.2))):
    r0 = int(rng.integers(0, size))
    h = int(rng.integers(1, 4))
    row_gain[r0:r0 + h] *= rng.uniform(1.3, 1.8) if rng.uniform() < 0.6 else rng.uniform(0.4, 0.7)
  img = img * row_gain[:, None].astype(np.float32)
  # Occasional shadow (vitreous floater).
  if rng.uniform() < 0.3:
    sy, sx = rng.uniform(0, size, 2)
    sr = rng.uniform(20, 50) * s
    img = img * (1.0 - rng.uniform(0.3, 0.6) * np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / (2 * sr ** 2)))
  img = np.where(in_faz, img * 0.6, img)
  gain = rng.uniform(1.0, 1.25)
  img = np.clip(img * gain, 0.0, 1.0) ** rng.uniform(0.85, 1.05)
  image = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
  thick = thick.astype(np.uint8)
  thin = thin.astype(np.uint8)
  return {'image': image, 'mask': thick | thin, 'thick': thick, 'thin': thin}


def example_rng(seed: int, split_index: int, index: int) -> np.random.Generator:
  """The Generator of example ``index`` of split number ``split_index``."""
  return np.random.default_rng(np.random.SeedSequence([int(seed), int(split_index), int(index)]))
