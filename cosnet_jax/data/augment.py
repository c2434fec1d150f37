"""Joint image / label augmentation as one affine resampling (numpy).

An output pixel (i, j) of a crop of size (ch, cw) samples the source at
    [sy, sx] = centre + R(angle) @ diag(fy, fx) @ [i - (ch-1)/2, j - (cw-1)/2] / scale
with fy, fx = +-1 (flips) and `scale` the isotropic resampling factor (> 1
enlarges: the dataset's spacing over the model's, times a random factor in
`data.scale_range`). The image is sampled bilinearly, the labels with
nearest neighbour, both through the same coordinates, so they stay aligned.
``valid`` is 1 where the nearest source pixel lies inside the image and the
output pixel lies inside the crop; elsewhere image, labels and valid are 0.
Output arrays have size ``out_hw`` >= the crop (the extra rows / columns at the
bottom / right are padding, valid = 0).

After the resampling, `intensity` applies the scanner-like augmentations of
`data.augment` (gamma, blur, speckle noise, stripes, low resolution) to the
image only. Every
draw is made from the example's generator in a fixed order, and a setting
that is off draws nothing, so switching one off reproduces the streams of a
config without it.
"""
import dataclasses
import math

import numpy as np
from PIL import Image
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class AugParams:
  """Augmentation of one example."""
  top: int  # crop offset (rows) in the source, before rotation about the centre
  left: int
  angle: float  # radians
  flip_y: bool
  flip_x: bool
  contrast: float  # image * contrast + brightness
  brightness: float
  scale: float = 1.0  # isotropic resampling factor (> 1 enlarges)


def crop_hw(src_hw, crop_size: int) -> tuple[int, int]:
  """Crop size for an image of size src_hw (crop_size 0 = whole image)."""
  return (crop_size, crop_size) if crop_size > 0 else tuple(int(v) for v in src_hw)


def sample_params(rng: np.random.Generator, src_hw, crop: tuple[int, int],
                  vessel_index: np.ndarray, data_cfg, scale: float = 1.0) -> AugParams:
  """Draws one example's augmentation.

  The crop is uniform over the positions inside the image, except that with
  probability ``crop_vessel_prob`` it is centred (as far as it fits) on a
  vessel pixel drawn uniformly from ``vessel_index`` (flat indices of mask
  pixels). A crop larger than the image is centred on it. `scale` is the
  fixed resampling factor of the dataset (spacing); a random factor from
  `data.scale_range` multiplies it.
  """
  h, w = src_hw
  u = rng.uniform(size=8)
  lo, hi = (float(v) for v in data_cfg.scale_range)
  if (lo, hi) != (1.0, 1.0):
    scale *= math.exp(math.log(lo) + rng.uniform() * (math.log(hi) - math.log(lo)))
  # The crop's extent in source pixels.
  ch, cw = (int(round(c / scale)) for c in crop) if scale != 1.0 else crop
  if ch < h or cw < w:
    if len(vessel_index) and u[0] < data_cfg.crop_vessel_prob:
      v = int(vessel_index[min(int(u[1] * len(vessel_index)), len(vessel_index) - 1)])
      top, left = v // w - (ch - 1) // 2, v % w - (cw - 1) // 2
    else:
      top = int(u[1] * (h - ch + 1))
      left = int(u[2] * (w - cw + 1))
    top = min(max(top, 0), max(h - ch, 0))
    left = min(max(left, 0), max(w - cw, 0))
  else:
    top = left = 0
  if ch > h:
    top = -((ch - h) // 2)
  if cw > w:
    left = -((cw - w) // 2)
  deg = float(data_cfg.rotation_deg)
  angle = math.radians((2 * u[3] - 1) * deg) if deg > 0 else 0.0
  flip_y = bool(data_cfg.flip) and u[4] < 0.5
  flip_x = bool(data_cfg.flip) and u[5] < 0.5
  j = float(data_cfg.intensity_jitter)
  return AugParams(top=top, left=left, angle=angle, flip_y=flip_y, flip_x=flip_x,
                   contrast=1.0 + (2 * u[6] - 1) * j, brightness=(2 * u[7] - 1) * j,
                   scale=float(scale))


def source_coords(params: AugParams, crop: tuple[int, int], out_hw: tuple[int, int]):
  """Source coordinates of every output pixel.

  Returns:
    (sy, sx) float32 [oh, ow] and in_crop bool [oh, ow].
  """
  ch, cw = crop
  oh, ow = out_hw
  u = np.arange(oh, dtype=np.float32) - np.float32((ch - 1) / 2)
  v = np.arange(ow, dtype=np.float32) - np.float32((cw - 1) / 2)
  if params.flip_y:
    u = -u
  if params.flip_x:
    v = -v
  if params.scale != 1.0:
    u = u / np.float32(params.scale)
    v = v / np.float32(params.scale)
  # The window's centre in the source (its extent there is crop / scale).
  sch, scw = ((int(round(c / params.scale)) for c in crop) if params.scale != 1.0
              else (ch, cw))
  cy = params.top + (sch - 1) / 2
  cx = params.left + (scw - 1) / 2
  c, s = math.cos(params.angle), math.sin(params.angle)
  if params.angle == 0.0:
    sy = np.broadcast_to((cy + u)[:, None], (oh, ow))
    sx = np.broadcast_to((cx + v)[None, :], (oh, ow))
  else:
    sy = np.float32(cy) + np.float32(c) * u[:, None] - np.float32(s) * v[None, :]
    sx = np.float32(cx) + np.float32(s) * u[:, None] + np.float32(c) * v[None, :]
  in_crop = (np.arange(oh) < ch)[:, None] & (np.arange(ow) < cw)[None, :]
  return sy, sx, in_crop


def warp(image_u8: np.ndarray, labels: np.ndarray, params: AugParams,
         crop: tuple[int, int], out_hw: tuple[int, int]):
  """Resamples one example.

  Args:
    image_u8: uint8 [H, W].
    labels: uint8 [H, W] (bit-packed labels; resampled by nearest neighbour).
    params, crop, out_hw: see module doc.

  Returns:
    image float32 [oh, ow] in [0, 1] (contrast / brightness applied, clipped),
    labels uint8 [oh, ow], valid float32 [oh, ow] in {0, 1}.
  """
  h, w = image_u8.shape
  sy, sx, in_crop = source_coords(params, crop, out_hw)
  ny = np.floor(sy + 0.5).astype(np.int32)
  nx = np.floor(sx + 0.5).astype(np.int32)
  valid = in_crop & (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
  flat_n = np.clip(ny, 0, h - 1) * w + np.clip(nx, 0, w - 1)
  out_labels = np.where(valid, labels.reshape(-1)[flat_n], np.uint8(0))
  img = image_u8.reshape(-1)
  if params.angle == 0.0 and float(sy[0, 0]).is_integer() and float(sx[0, 0]).is_integer():
    value = img[flat_n].astype(np.float32) / np.float32(255.0)
  else:
    y0 = np.floor(sy)
    x0 = np.floor(sx)
    wy = (sy - y0).astype(np.float32)
    wx = (sx - x0).astype(np.float32)
    y0 = y0.astype(np.int32)
    x0 = x0.astype(np.int32)
    ya = np.clip(y0, 0, h - 1) * w
    yb = np.clip(y0 + 1, 0, h - 1) * w
    xa = np.clip(x0, 0, w - 1)
    xb = np.clip(x0 + 1, 0, w - 1)
    top = img[ya + xa] * (1 - wx) + img[ya + xb] * wx
    bot = img[yb + xa] * (1 - wx) + img[yb + xb] * wx
    value = (top * (1 - wy) + bot * wy) / np.float32(255.0)
  if params.contrast != 1.0 or params.brightness != 0.0:
    value = np.clip(value * np.float32(params.contrast) + np.float32(params.brightness), 0, 1)
  validf = valid.astype(np.float32)
  return (value * validf).astype(np.float32), out_labels, validf


def intensity(value: np.ndarray, valid: np.ndarray, rng: np.random.Generator,
              aug_cfg) -> np.ndarray:
  """Scanner-like augmentations of an image float32 [h, w] in [0, 1] (module doc).

  `valid` float32 [h, w] marks the image's pixels; the result is 0 elsewhere.
  """
  out = value
  gamma = float(aug_cfg.gamma)
  if gamma > 0:
    out = np.power(np.clip(out, 0, 1), np.float32(math.exp(rng.uniform(-gamma, gamma))))
  if float(aug_cfg.blur_prob) > 0 and rng.uniform() < float(aug_cfg.blur_prob):
    lo, hi = aug_cfg.blur_sigma
    out = ndimage.gaussian_filter(out, float(rng.uniform(lo, hi)), mode='nearest')
  if float(aug_cfg.noise_prob) > 0 and rng.uniform() < float(aug_cfg.noise_prob):
    lo, hi = aug_cfg.noise_std
    std = np.float32(rng.uniform(lo, hi))
    out = out * (1 + std * rng.standard_normal(out.shape).astype(np.float32))
  if float(aug_cfg.stripes_prob) > 0 and rng.uniform() < float(aug_cfg.stripes_prob):
    h = out.shape[0]
    out = np.array(out, np.float32)
    for _ in range(int(rng.integers(1, int(aug_cfg.stripes_max) + 1))):
      row, rows = int(rng.integers(0, h)), int(rng.integers(1, 5))
      out[row:row + rows] = out[row:row + rows] + np.float32(rng.uniform(-0.3, 0.3))
  if float(aug_cfg.lowres_prob) > 0 and rng.uniform() < float(aug_cfg.lowres_prob):
    lo, hi = aug_cfg.lowres_factor
    out = lowres(out, float(rng.uniform(lo, hi)))
  if out is value:
    return value
  return (np.clip(out, 0, 1) * valid).astype(np.float32)


def lowres(value: np.ndarray, factor: float) -> np.ndarray:
  """float32 [h, w] sampled `factor` times more coarsely, then back to [h, w].

  Area-averaged down-sampling (PIL's bilinear filter widens with the
  factor), bilinear up-sampling: the look of a scan whose pixel spacing is
  `factor` times larger (a wider field of view at the same number of A-scans)
  after it was resampled to the model's spacing.
  """
  h, w = value.shape
  small = (max(int(round(w / factor)), 1), max(int(round(h / factor)), 1))
  im = Image.fromarray(np.asarray(value, np.float32), mode='F')
  return np.asarray(im.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR),
                    np.float32)


def augment(image_u8, labels, vessel_index, rng, data_cfg, out_hw, scale: float = 1.0):
  """Random crop / scale / rotation / flips / intensity of one example (see warp)."""
  crop = crop_hw(image_u8.shape, data_cfg.crop_size)
  if data_cfg.crop_size <= 0 and scale != 1.0:   # the whole image, resampled
    crop = tuple(int(round(c * scale)) for c in crop)
  params = sample_params(rng, image_u8.shape, crop, vessel_index, data_cfg, scale)
  value, out_labels, valid = warp(image_u8, labels, params, crop, out_hw)
  return intensity(value, valid, rng, data_cfg.augment), out_labels, valid
