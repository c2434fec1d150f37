"""Test-time augmentation: average a model's maps over mirrored and shifted inputs.

Training draws vertical and horizontal flips (`data.flip`), so mirrored
images are in the training distribution; predicting each mirror and mirroring
the maps back gives the model several looks at every pixel. Only the valid
(unpadded) region of each image is mirrored, so the zero padding stays at the
bottom / right where training and plain inference put it, and the flip is its
own inverse.

One-pixel shifts do the same for the encoder's stride-2 grids: a stride-32
network sees each pixel at one phase of its downsampling grids, and moving
the image by one row / column moves the pixel to another phase (the
experiments' README measures this). A shifted pass moves the valid region
down / right by (dy, dx), repeating its first rows / columns (edge padding)
and dropping as many at the far end; its maps are moved back the same way,
repeating the last rows / columns, so every pixel of the result is a map
value of that pixel or of its edge neighbour.

Modes (`config.eval.tta`, `evaluate --tta`, `predict --tta`):
  'none'          the image as is (1 forward pass)
  'hflip'         + left-right mirror (2 passes)
  'flips'         + up-down and both mirrors (4 passes)
  'flips_shifts'  each of the 4 mirrors at the 4 shifts (dy, dx) in {0, 1}^2
                  (16 passes)
"""
from __future__ import annotations

import itertools
from typing import Callable, NamedTuple

import numpy as np

from cosnet_jax.errors import ConfigError


class Pass(NamedTuple):
  """One forward pass: mirror rows / columns, then move by (shift_y, shift_x)."""
  flip_y: bool
  flip_x: bool
  shift_y: int = 0
  shift_x: int = 0


_FLIPS = ((False, False), (False, True), (True, False), (True, True))

# The passes of each mode; the identity first.
MODES: dict[str, tuple[Pass, ...]] = {
    'none': (Pass(False, False),),
    'hflip': (Pass(False, False), Pass(False, True)),
    'flips': tuple(Pass(fy, fx) for fy, fx in _FLIPS),
    'flips_shifts': tuple(Pass(fy, fx, dy, dx) for (fy, fx), dy, dx
                          in itertools.product(_FLIPS, (0, 1), (0, 1))),
}


def check_mode(mode: str, key: str = 'eval.tta') -> tuple[Pass, ...]:
  """The passes of `mode`; a ConfigError naming `key` for an unknown mode."""
  if mode not in MODES:
    raise ConfigError(f'{key}={mode!r}: expected one of {sorted(MODES)}')
  return MODES[mode]


def flip_valid(x: np.ndarray, heights, widths, flip_y: bool, flip_x: bool) -> np.ndarray:
  """Mirrors each image's valid top-left [h_i, w_i] region; padding stays put.

  Args:
    x: [B, H, W, ...] batch (padded bottom / right).
    heights, widths: int [B], the valid size of each image (0 for a filler).
    flip_y, flip_x: mirror rows / columns.
  Returns:
    A new array like x. Applying it twice gives x back.
  """
  out = np.array(x, copy=True)
  if not (flip_y or flip_x):
    return out
  for i, (h, w) in enumerate(zip(np.asarray(heights), np.asarray(widths))):
    h, w = int(h), int(w)
    region = out[i, :h, :w]
    if flip_y:
      region = region[::-1]
    if flip_x:
      region = region[:, ::-1]
    out[i, :h, :w] = region
  return out


def shift_region(region: np.ndarray, dy: int, dx: int, back: bool = False) -> np.ndarray:
  """Moves an [h, w, ...] region down / right by (dy, dx), edge-padded.

  `back=True` is the reverse move (up / left, repeating the last rows /
  columns): shift_region(shift_region(r, dy, dx), dy, dx, back=True) equals r
  except in the last dy rows and dx columns. A region no larger than the
  shift along an axis is returned unmoved along it.
  """
  h, w = region.shape[:2]
  dy = dy if h > dy else 0
  dx = dx if w > dx else 0
  if not (dy or dx):
    return np.array(region, copy=True)
  rest = [(0, 0)] * (region.ndim - 2)
  if back:
    return np.pad(region[dy:, dx:], [(0, dy), (0, dx)] + rest, mode='edge')
  return np.pad(region[:h - dy, :w - dx], [(dy, 0), (dx, 0)] + rest, mode='edge')


def shift_valid(x: np.ndarray, heights, widths, dy: int, dx: int,
                back: bool = False) -> np.ndarray:
  """`shift_region` on each image's valid top-left [h_i, w_i] region.

  Args:
    x: [B, H, W, ...] batch (padded bottom / right).
    heights, widths: int [B] valid sizes (0 for a filler).
    dy, dx: the shift (rows, columns), >= 0.
    back: the reverse move (for maps).
  Returns:
    A new array like x; the padding stays put.
  """
  out = np.array(x, copy=True)
  if not (dy or dx):
    return out
  for i, (h, w) in enumerate(zip(np.asarray(heights), np.asarray(widths))):
    h, w = int(h), int(w)
    if h and w:
      out[i, :h, :w] = shift_region(out[i, :h, :w], dy, dx, back=back)
  return out


def _is_identity(p: Pass) -> bool:
  return not (p.flip_y or p.flip_x or p.shift_y or p.shift_x)


def average_batch(predict: Callable[[np.ndarray], dict], image: np.ndarray,
                  heights, widths, mode: str, outputs: tuple[str, ...]) -> dict:
  """Mean over the passes of `mode` of predict's maps, moved back.

  Args:
    predict: fn(image [B, H, W, 1]) -> dict of numpy maps [B, H, W, 1].
    image: float32 [B, H, W, 1] batch, padded bottom / right.
    heights, widths: int [B] valid sizes.
    mode: a key of MODES.
    outputs: the map names to average and return.
  Returns:
    {name: float32 [B, H, W, 1]}; the padding of each map is that of the
    identity pass.
  """
  passes = check_mode(mode)
  total = None
  for p in passes:
    if _is_identity(p):    # needs no copies
      maps = predict(image)
      maps = {k: np.asarray(maps[k], np.float32) for k in outputs}
    else:
      x = flip_valid(image, heights, widths, p.flip_y, p.flip_x)
      maps = predict(shift_valid(x, heights, widths, p.shift_y, p.shift_x))
      maps = {k: flip_valid(shift_valid(np.asarray(maps[k], np.float32), heights, widths,
                                        p.shift_y, p.shift_x, back=True),
                            heights, widths, p.flip_y, p.flip_x) for k in outputs}
    total = maps if total is None else {k: total[k] + maps[k] for k in outputs}
  if len(passes) == 1:
    return total
  return {k: total[k] / np.float32(len(passes)) for k in outputs}


def image_pass(prob_fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray,
               p: Pass) -> np.ndarray:
  """prob_fn's float32 [H, W] map of a whole [H, W] image seen through pass
  `p` (mirrored, then shifted), moved back onto the image."""
  p = Pass(*p)
  sl = (slice(None, None, -1 if p.flip_y else 1), slice(None, None, -1 if p.flip_x else 1))
  x = shift_region(np.ascontiguousarray(image[sl]), p.shift_y, p.shift_x)
  prob = np.asarray(prob_fn(x), np.float32)
  return shift_region(prob, p.shift_y, p.shift_x, back=True)[sl]


def average_image(prob_fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray,
                  mode: str) -> np.ndarray:
  """Mean over the passes of `mode` of prob_fn on a whole [H, W] image."""
  passes = check_mode(mode)
  total = None
  for p in passes:
    prob = image_pass(prob_fn, image, p)
    total = prob if total is None else total + prob
  return total / np.float32(len(passes))
