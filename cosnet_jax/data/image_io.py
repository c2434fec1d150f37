"""Reading and writing OCTA image / label files (PNG, BMP, TIFF, JPEG; 8/16-bit; gray/RGB).

Conversions (documented in docs/data.md):
  * 8-bit gray: value / 255.
  * 16-bit gray (PIL modes 'I;16*', or 'I' with values in [0, 65535]): value / 65535.
  * 32-bit float gray ('F'): used as is; it must lie in [0, 1].
  * RGB / RGBA / palette / CMYK: luminance 0.299 R + 0.587 G + 0.114 B of the
    8-bit channels (alpha is dropped); a label whose channels are equal uses one
    channel directly.
  * 1-bit: {0, 1}.
  * Multi-page TIFF: the first page.
The data layer stores images as 8-bit (round(value * 255)), which is also what
CLAHE works on.
"""
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

from cosnet_jax.data.errors import DataError, ImageReadError, LabelValueError

_LUMA = np.array([0.299, 0.587, 0.114])
_RGB_MODES = ('RGB', 'RGBA', 'RGBX', 'CMYK', 'YCbCr', 'LAB', 'HSV', 'P', 'PA', 'La')


def raw_array(path) -> np.ndarray:
  """Decodes one file to a 2-D numpy array [H, W] in its native value range.

  Returns uint8 (8-bit, 1-bit as {0, 1}, colour -> luminance), uint16/int32
  (16-bit) or float32 ('F').
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ImageReadError(f'Image file not found: {path}')
  try:
    with Image.open(path) as im:
      im.load()
      mode = im.mode
      if mode == '1':
        return np.asarray(im, dtype=np.uint8)
      if mode in ('L', 'LA'):
        arr = np.asarray(im)
        return arr[..., 0] if arr.ndim == 3 else arr
      if mode.startswith('I;16') or mode == 'I':
        arr = np.asarray(im).astype(np.int64)
        if arr.min() < 0 or arr.max() > 65535:
          raise ImageReadError(
              f'{path}: 32-bit integer image with values outside [0, 65535] '
              f'(min {arr.min()}, max {arr.max()}) is not supported')
        return arr.astype(np.uint16)
      if mode == 'F':
        return np.asarray(im, dtype=np.float32)
      if mode in _RGB_MODES or mode.startswith('RGB'):
        rgb = np.asarray(im.convert('RGB'), dtype=np.uint8)
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
          return rgb[..., 0].copy()
        return np.clip(np.rint(rgb @ _LUMA), 0, 255).astype(np.uint8)
      raise ImageReadError(f'{path}: unsupported image mode {mode!r}')
  except DataError:
    raise
  # What PIL raises for missing, truncated, corrupt or foreign files.
  except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError,
          struct.error, zlib.error, Image.DecompressionBombError) as e:
    raise ImageReadError(
        f'Cannot read image {path} (corrupt, truncated or not an image): '
        f'{type(e).__name__}: {e}') from e


def load_image(path) -> np.ndarray:
  """Reads an image file as float32 [H, W] in [0, 1] (conversions: module doc).

  Raises:
    ImageReadError: naming the file, if it is missing, corrupt, truncated or of
      an unsupported kind.
  """
  arr = raw_array(path)
  if arr.dtype == np.uint8:
    return arr.astype(np.float32) / np.float32(255.0)
  if arr.dtype == np.uint16:
    return arr.astype(np.float32) / np.float32(65535.0)
  if not (np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0):
    raise ImageReadError(
        f'{os.fspath(path)}: float image must lie in [0, 1] '
        f'(min {np.nanmin(arr)}, max {np.nanmax(arr)})')
  return arr.astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
  """float [H, W] in [0, 1] -> uint8 [H, W] (round half to even, clipped)."""
  return np.clip(np.rint(np.asarray(image, np.float32) * np.float32(255.0)), 0,
                 255).astype(np.uint8)


def read_image_u8(path) -> np.ndarray:
  """Reads an image file as uint8 [H, W] (the 8-bit form the data layer stores)."""
  return to_uint8(load_image(path))


def read_label(path) -> np.ndarray:
  """Reads a binary label file as uint8 [H, W] in {0, 1}.

  Accepted value sets: any subset of {0, 1} or of {0, 255}.

  Raises:
    LabelValueError: naming the file and the values found, for other values.
    ImageReadError: if the file cannot be read.
  """
  arr = raw_array(path)
  values = np.unique(arr)
  vset = set(values.tolist())
  if vset <= {0, 1}:
    return (arr == 1).astype(np.uint8)
  if vset <= {0, 255}:
    return (arr == 255).astype(np.uint8)
  shown = ', '.join(str(v) for v in values[:12].tolist())
  more = f' ... ({len(values)} distinct values)' if len(values) > 12 else ''
  raise LabelValueError(
      f'Label {os.fspath(path)} is not binary: found values [{shown}{more}]; '
      'expected values within {0, 1} or within {0, 255}')


def image_size(path) -> tuple[int, int]:
  """(H, W) of an image file from its header; raises ImageReadError naming the file."""
  try:
    with Image.open(os.fspath(path)) as im:
      w, h = im.size
  except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
    raise ImageReadError(
        f'Cannot read image {os.fspath(path)} (corrupt, truncated or not an '
        f'image): {type(e).__name__}: {e}') from e
  return h, w


def encode_png(array_u8: np.ndarray) -> bytes:
  """uint8 [H, W] -> PNG bytes (fast compression)."""
  buf = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(array_u8, dtype=np.uint8)).save(
      buf, format='PNG', compress_level=1)
  return buf.getvalue()
