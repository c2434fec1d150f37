"""CLAHE (contrast-limited adaptive histogram equalisation) in numpy, cv2 semantics.

Reproduces ``cv2.createCLAHE(clipLimit, tileGridSize).apply`` on 8-bit images:
  1. If H or W is not a multiple of the tile grid, the image is extended at the
     bottom and right by ``tiles - size % tiles`` rows AND columns
     (reflect-101), as cv2 does (cv2 extends both axes even when only one needs
     it).
  2. Per tile a 256-bin histogram; it is clipped at
     ``max(int(clip_limit * tile_pixels / 256), 1)``; the clipped count is
     spread evenly over all bins and the remainder adds 1 to every
     ``max(256 // remainder, 1)``-th bin from bin 0 on.
  3. Per tile a LUT ``round(cumsum(hist) * 255 / tile_pixels)``.
  4. Each output pixel bilinearly interpolates the LUTs of the four tiles whose
     centres surround it (edge tiles are clamped), in float32, rounded half to
     even.
"""
from typing import Sequence, Union

import numpy as np

_BINS = 256


def _grid(tile_grid: Union[int, Sequence[int]]) -> tuple[int, int]:
  """Returns (tiles_y, tiles_x) from an int or cv2's (tiles_x, tiles_y)."""
  if isinstance(tile_grid, (int, np.integer)):
    return int(tile_grid), int(tile_grid)
  tx, ty = (int(t) for t in tile_grid)
  return ty, tx


def tile_luts(image_u8: np.ndarray, clip_limit: float, tiles_y: int,
              tiles_x: int) -> tuple[np.ndarray, tuple[int, int]]:
  """Per-tile equalisation LUTs.

  Args:
    image_u8: uint8 [H, W].
    clip_limit: cv2 clipLimit (<= 0 disables clipping).
    tiles_y, tiles_x: tile grid.

  Returns:
    (luts uint8 [tiles_y, tiles_x, 256], (tile_h, tile_w)).
  """
  h, w = image_u8.shape
  if h % tiles_y or w % tiles_x:
    ext = np.pad(image_u8, ((0, tiles_y - h % tiles_y), (0, tiles_x - w % tiles_x)),
                 mode='reflect')
  else:
    ext = image_u8
  th, tw = ext.shape[0] // tiles_y, ext.shape[1] // tiles_x
  ext = ext[:th * tiles_y, :tw * tiles_x]
  tiles = ext.reshape(tiles_y, th, tiles_x, tw).transpose(0, 2, 1, 3)
  tiles = tiles.reshape(tiles_y * tiles_x, th * tw).astype(np.int64)
  n_tiles = tiles_y * tiles_x
  offsets = (np.arange(n_tiles, dtype=np.int64) * _BINS)[:, None]
  hist = np.bincount((tiles + offsets).ravel(),
                     minlength=n_tiles * _BINS).reshape(n_tiles, _BINS)
  total = th * tw
  if clip_limit > 0:
    clip = max(int(clip_limit * total / _BINS), 1)
    clipped = np.maximum(hist - clip, 0).sum(axis=1)
    hist = np.minimum(hist, clip)
    redist = clipped // _BINS
    residual = clipped - redist * _BINS
    hist = hist + redist[:, None]
    step = np.maximum(_BINS // np.maximum(residual, 1), 1)
    bins = np.arange(_BINS)[None, :]
    extra = (bins % step[:, None] == 0) & (bins // step[:, None] < residual[:, None])
    hist = hist + extra
  scale = np.float32(_BINS - 1) / np.float32(total)
  lut = np.cumsum(hist, axis=1).astype(np.float32) * scale
  lut = np.clip(np.rint(lut), 0, 255).astype(np.uint8)
  return lut.reshape(tiles_y, tiles_x, _BINS), (th, tw)


def _axis_weights(n: int, tile: int, tiles: int):
  """cv2's interpolation indices and weights along one axis (float32)."""
  f = np.arange(n, dtype=np.float32) * (np.float32(1.0) / np.float32(tile)) - np.float32(0.5)
  i1 = np.floor(f).astype(np.int64)
  a = (f - i1.astype(np.float32)).astype(np.float32)
  i2 = np.minimum(i1 + 1, tiles - 1)
  i1 = np.maximum(i1, 0)
  return i1, i2, a, (np.float32(1.0) - a).astype(np.float32)


def clahe(image_u8: np.ndarray, clip_limit: float = 2.0,
          tile_grid: Union[int, Sequence[int]] = 8) -> np.ndarray:
  """CLAHE of a uint8 [H, W] image -> uint8 [H, W] (cv2 semantics, module doc).

  Args:
    image_u8: uint8 [H, W] gray image.
    clip_limit: cv2 clipLimit; <= 0 means no clipping (plain adaptive HE).
    tile_grid: tiles per axis (int) or cv2's (tiles_x, tiles_y).
  """
  image_u8 = np.asarray(image_u8)
  if image_u8.dtype != np.uint8 or image_u8.ndim != 2:
    raise ValueError(f'clahe expects uint8 [H, W], got {image_u8.dtype} {image_u8.shape}')
  tiles_y, tiles_x = _grid(tile_grid)
  if tiles_y < 1 or tiles_x < 1:
    raise ValueError(f'tile_grid must be >= 1, got {tile_grid}')
  luts, (th, tw) = tile_luts(image_u8, clip_limit, tiles_y, tiles_x)
  h, w = image_u8.shape
  y1, y2, ya, ya1 = _axis_weights(h, th, tiles_y)
  x1, x2, xa, xa1 = _axis_weights(w, tw, tiles_x)
  flat = luts.reshape(-1).astype(np.float32)
  v = image_u8.astype(np.int64)
  r1 = (y1 * tiles_x)[:, None]
  r2 = (y2 * tiles_x)[:, None]
  c1, c2 = x1[None, :], x2[None, :]
  top = flat[(r1 + c1) * _BINS + v] * xa1 + flat[(r1 + c2) * _BINS + v] * xa
  bot = flat[(r2 + c1) * _BINS + v] * xa1 + flat[(r2 + c2) * _BINS + v] * xa
  res = top * ya1[:, None] + bot * ya[:, None]
  return np.clip(np.rint(res), 0, 255).astype(np.uint8)
