"""Flip test-time augmentation: average a model's maps over mirrored inputs.

Training draws vertical and horizontal flips (`data.flip`), so mirrored
images are in the training distribution; predicting each mirror and mirroring
the maps back gives the model several looks at every pixel. Only the valid
(unpadded) region of each image is mirrored, so the zero padding stays at the
bottom / right where training and plain inference put it, and the flip is its
own inverse.

Modes (`config.eval.tta`, `evaluate --tta`, `predict --tta`):
  'none'   the image as is (1 forward pass)
  'hflip'  + left-right mirror (2 passes)
  'flips'  + up-down and both mirrors (4 passes)
"""
from __future__ import annotations

from typing import Callable

import numpy as np

# (flip rows, flip columns) of each pass; the identity first.
MODES: dict[str, tuple[tuple[bool, bool], ...]] = {
    'none': ((False, False),),
    'hflip': ((False, False), (False, True)),
    'flips': ((False, False), (False, True), (True, False), (True, True)),
}


def check_mode(mode: str, key: str = 'eval.tta') -> tuple[tuple[bool, bool], ...]:
  """The passes of `mode`; a ValueError naming `key` for an unknown mode."""
  if mode not in MODES:
    raise ValueError(f'{key}={mode!r}: expected one of {sorted(MODES)}')
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


def average_batch(predict: Callable[[np.ndarray], dict], image: np.ndarray,
                  heights, widths, mode: str, outputs: tuple[str, ...]) -> dict:
  """Mean over the passes of `mode` of predict's maps, mirrored back.

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
  for fy, fx in passes:
    mirror = fy or fx    # the identity pass needs no copies
    maps = predict(flip_valid(image, heights, widths, fy, fx) if mirror else image)
    maps = {k: (flip_valid(np.asarray(maps[k], np.float32), heights, widths, fy, fx)
                if mirror else np.asarray(maps[k], np.float32)) for k in outputs}
    total = maps if total is None else {k: total[k] + maps[k] for k in outputs}
  if len(passes) == 1:
    return total
  return {k: total[k] / np.float32(len(passes)) for k in outputs}


def average_image(prob_fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray,
                  mode: str) -> np.ndarray:
  """Mean over the passes of `mode` of prob_fn on a whole [H, W] image."""
  passes = check_mode(mode)
  total = None
  for fy, fx in passes:
    sl = (slice(None, None, -1 if fy else 1), slice(None, None, -1 if fx else 1))
    prob = np.asarray(prob_fn(np.ascontiguousarray(image[sl])), np.float32)[sl]
    total = prob if total is None else total + prob
  return total / np.float32(len(passes))
