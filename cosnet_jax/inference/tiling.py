"""Model-independent inference helpers: padding and sliding-window tiling.

`sliding_window` lets a model trained on small crops (e.g. 304x304) segment a
large image (e.g. ROSE-2's or a 6 mm scan's 1216x1216): the image is cut into
overlapping tiles, the model runs on fixed-size batches of tiles (static
shapes: the last batch is filled with zero tiles, so a jitted `fn` compiles
once), and the tile outputs are blended with a separable window that is 1 in
the tile interior and falls smoothly (raised cosine) over the overlap. The
blend divides by the summed weights, so a constant-preserving `fn` reproduces
its input exactly (up to float rounding) whatever the image size.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np


def pad_to_multiple(img: np.ndarray, multiple: int, *, value: float = 0.0
                    ) -> tuple[np.ndarray, tuple[int, int]]:
  """Pads the bottom / right of an image to a multiple of `multiple`.

  Same layout as the evaluation pipeline (`data.make_eval_batches`).

  Args:
    img: [H, W] (trailing axes, e.g. [H, W, C], are carried along unpadded).
    multiple: >= 1.
    value: fill value.
  Returns:
    (padded [H', W', ...] with H', W' the next multiples, (H, W)).
  """
  img = np.asarray(img)
  if img.ndim < 2:
    raise ValueError(f'img must be at least 2-D [H, W]; got {img.shape}')
  multiple = int(multiple)
  if multiple < 1:
    raise ValueError(f'multiple must be >= 1; got {multiple}')
  h, w = img.shape[:2]
  ph = -h % multiple
  pw = -w % multiple
  pad = [(0, ph), (0, pw)] + [(0, 0)] * (img.ndim - 2)
  return np.pad(img, pad, constant_values=value), (h, w)


def crop_back(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Inverse of `pad_to_multiple`: arr [H', W', ...] -> arr[:H, :W, ...]."""
  h, w = int(size[0]), int(size[1])
  arr = np.asarray(arr)
  if arr.ndim < 2 or arr.shape[0] < h or arr.shape[1] < w:
    raise ValueError(f'cannot crop an array of shape {arr.shape} to {(h, w)}')
  return arr[:h, :w]


def tile_starts(length: int, tile: int, overlap: int) -> np.ndarray:
  """Start offsets of tiles covering [0, length) with at least `overlap`.

  Tiles are spread evenly, the first at 0 and the last at length - tile.
  Requires length >= tile (callers pad smaller images).

  Returns:
    int [n] sorted starts.
  """
  if length < tile:
    raise ValueError(f'length {length} < tile {tile}')
  stride = tile - overlap
  n = 1 + math.ceil((length - tile) / stride)
  return np.rint(np.linspace(0, length - tile, n)).astype(np.int64)


def blend_window(tile: int, overlap: int) -> np.ndarray:
  """1-D blending weights [tile]: 1 inside, raised-cosine ramps of `overlap`.

  All weights are > 0, so every pixel of the image gets a defined average.
  """
  i = np.arange(tile, dtype=np.float64)
  ramp = np.minimum(np.minimum(i + 1, tile - i) / (overlap + 1), 1.0)
  return 0.5 - 0.5 * np.cos(np.pi * ramp)


def sliding_window(fn: Callable[[np.ndarray], np.ndarray], img: np.ndarray,
                   tile: int, overlap: int, batch: int, *,
                   pad_value: float = 0.0) -> np.ndarray:
  """Runs `fn` over overlapping tiles of `img` and blends the outputs.

  Args:
    fn: maps float32 [batch, tile, tile, 1] -> [batch, tile, tile, 1]
      (e.g. a jitted model returning probabilities); always called with
      exactly `batch` tiles.
    img: [H, W] image (any size; smaller than `tile` is padded bottom/right
      with `pad_value` and cropped back).
    tile: tile side (e.g. 304, or a multiple of 32 for the U-Net).
    overlap: pixels shared by neighbouring tiles, 0 <= overlap < tile.
    batch: tiles per call of `fn`.
  Returns:
    float32 [H, W] blended output.
  """
  img = np.asarray(img)
  if img.ndim != 2:
    raise ValueError(f'img must have shape [H, W]; got {img.shape}')
  tile, overlap, batch = int(tile), int(overlap), int(batch)
  if tile < 1 or batch < 1:
    raise ValueError(f'tile and batch must be >= 1; got {tile}, {batch}')
  if not 0 <= overlap < tile:
    raise ValueError(f'overlap must be in [0, tile); got {overlap}')
  h, w = img.shape
  hp, wp = max(h, tile), max(w, tile)
  padded = np.full((hp, wp), pad_value, np.float32)
  padded[:h, :w] = img
  ys = tile_starts(hp, tile, overlap)
  xs = tile_starts(wp, tile, overlap)
  starts = [(y, x) for y in ys for x in xs]
  win1 = blend_window(tile, overlap)
  window = np.outer(win1, win1)                       # [tile, tile]
  acc = np.zeros((hp, wp), np.float64)
  norm = np.zeros((hp, wp), np.float64)
  for b0 in range(0, len(starts), batch):
    chunk = starts[b0:b0 + batch]
    tiles = np.zeros((batch, tile, tile, 1), np.float32)
    for k, (y, x) in enumerate(chunk):
      tiles[k, :, :, 0] = padded[y:y + tile, x:x + tile]
    out = np.asarray(fn(tiles))
    if out.shape != (batch, tile, tile, 1):
      raise ValueError(f'fn returned shape {out.shape}; expected '
                       f'{(batch, tile, tile, 1)}')
    for k, (y, x) in enumerate(chunk):
      acc[y:y + tile, x:x + tile] += window * out[k, :, :, 0]
      norm[y:y + tile, x:x + tile] += window
  return (acc / norm)[:h, :w].astype(np.float32)
