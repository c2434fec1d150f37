"""Inference on numpy images: a trained model as a function image -> (probabilities, mask).

    from cosnet_jax.inference import Segmenter
    seg = Segmenter.from_pretrained('octa500-3m')        # a shipped model, or a .cosnet file
    seg = Segmenter.from_workdir('runs/quickstart')      # best checkpoints of a run
    prob, mask = seg(image)       # image: numpy [H, W] or [H, W, 3], any size
    prob, mask = seg(image, spacing_um=15.0)   # a 6x6 mm / 400 px scan
    seg = Segmenter.from_pretrained('octa500-3m', tta='flips')   # mean of 4 mirrors

The image goes through the same preprocessing as in training (intensity
scaling to [0, 1], quantised to 8 bit, CLAHE when the run used it). With a
spacing (or field of view) of the input and a model that knows its own, the
image is resampled to the model's spacing and the probabilities back. It is
padded bottom/right to a multiple of 32 (or, above `max_side`, processed in
overlapping tiles) and the output is cropped back to the input size. With
test-time augmentation (`tta`, see `inference.tta`) the pipeline after
preprocessing runs on each mirror / shift and the results are averaged.
"""
from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cosnet_jax import biomarkers, compilation, models
from cosnet_jax.data import pipeline
from cosnet_jax.data.preprocess import preprocess
from cosnet_jax.errors import UserError
from cosnet_jax.evaluation import metrics as metrics_lib
from cosnet_jax.inference import tiling
from cosnet_jax.inference import trained as trained_lib
from cosnet_jax.inference import tta as tta_lib
from cosnet_jax.models.formulation import formulation


# Input spacings within this factor of the model's are resampled; further off is
# a mistaken spacing or field of view more likely than a real scan.
MAX_RESAMPLING = 4.0


def input_spacing(width: int, spacing_um: float | None = None,
                  fov_mm: float | None = None) -> float | None:
  """The input's pixel spacing (um) from a spacing or a field of view (mm across)."""
  if spacing_um is not None and fov_mm is not None:
    raise UserError('give the spacing or the field of view, not both')
  if spacing_um is not None:
    if spacing_um <= 0:
      raise UserError(f'spacing {spacing_um}: expected > 0 micrometres per pixel')
    return float(spacing_um)
  if fov_mm is not None:
    if fov_mm <= 0:
      raise UserError(f'field of view {fov_mm}: expected > 0 mm')
    return float(fov_mm) * 1000.0 / width
  return None


class Segmenter:
  """COSNet stage 1 (+ refinement) as a numpy-in / numpy-out function."""

  def __init__(self, trained: trained_lib.TrainedModel, *, max_side: int = 1024,
               tile: int = 512, overlap: int = 64, tta: str | None = None,
               platform_cfg=None):
    config = trained.config
    self.trained = trained
    self.config = config
    self.tta = tta if tta is not None else config.eval.tta
    tta_lib.check_mode(self.tta, 'tta')
    backend = jax.default_backend()
    platform_cfg = platform_cfg if platform_cfg is not None else config.platform
    self.model = models.build_cosnet(config.model,
                                     formulation=formulation(platform_cfg, backend))
    self.refiner = (models.build_refiner(config.refine.model)
                    if trained.stage2 is not None else None)
    self.stage1_vars = jax.device_put(trained.stage1)
    self.refine_vars = None if trained.stage2 is None else jax.device_put(trained.stage2)
    self.max_side, self.tile, self.overlap = max_side, tile, overlap
    self.multiple = int(config.data.pad_multiple)
    self.steps = trained.meta.get('steps')
    self._forward = jax.jit(self._maps, compiler_options=compilation.compiler_options(
        platform_cfg, backend, 'infer'))

  @classmethod
  def from_workdir(cls, workdir: str | pathlib.Path, checkpoint: str | int = 'best',
                   **kwargs) -> 'Segmenter':
    """The best (or `checkpoint`) checkpoints of a training workdir."""
    return cls(trained_lib.from_workdir(workdir, checkpoint), **kwargs)

  @classmethod
  def from_pretrained(cls, name_or_path: str | pathlib.Path, **kwargs) -> 'Segmenter':
    """A model file (cosnet-export), a shipped model's name, or a workdir."""
    return cls(trained_lib.load(name_or_path), **kwargs)

  @property
  def spacing_um(self) -> float:
    """The pixel spacing the model was trained at (0 = unknown)."""
    return self.trained.spacing_um

  def _maps(self, s1, s2, image):
    """image [B, H, W, 1] -> dict of [B, H, W, 1] maps."""
    out = self.model.apply(s1, image, train=False, with_embeddings=False)
    maps = {'thick': out['thick'], 'thin': out['thin'], 'coarse': out['coarse']}
    if self.refiner is not None:
      maps['refined'] = self.refiner.apply(s2, image, out['thick'], out['thin'],
                                           train=False)
    return maps

  @property
  def output_name(self) -> str:
    return 'refined' if self.refiner is not None else 'coarse'

  def batch_maps(self, batch: np.ndarray) -> dict[str, np.ndarray]:
    """batch: float32 [B, H, W, 1], H and W multiples of 32."""
    return jax.device_get(self._forward(self.stage1_vars, self.refine_vars,
                                        jnp.asarray(batch, jnp.float32)))

  def scale_for(self, width: int, spacing_um: float | None = None,
                fov_mm: float | None = None) -> float:
    """Resampling factor of an input `width` pixels wide (1 without a spacing)."""
    spacing = input_spacing(width, spacing_um, fov_mm)
    if spacing is None:
      return 1.0
    if not self.spacing_um:
      raise UserError(f'{self.trained.source}: the model does not know the spacing it was '
                      'trained at, so an input spacing cannot be used')
    factor = spacing / self.spacing_um
    if not MAX_RESAMPLING ** -1 <= factor <= MAX_RESAMPLING:
      raise UserError(
          f'input spacing {spacing:.4g} um per pixel: the model was trained at '
          f'{self.spacing_um:.4g} um per pixel, and a {factor:.3g}x resampling is beyond '
          f'what it was checked at ({1 / MAX_RESAMPLING:g}x-{MAX_RESAMPLING:g}x): check '
          '--spacing_um / --fov_mm')
    return factor

  def measure(self, mask: np.ndarray, spacing_um: float | None = None, *,
              roi_mm: tuple[float, ...] | None = None) -> dict[str, float]:
    """The vessel biomarkers of a mask (biomarkers.measure): e.g. of
    `self(image)[1]` at the input's spacing (not the model's)."""
    return biomarkers.measure(mask, spacing_um, roi_mm=roi_mm)

  def probabilities(self, image: Any, *, spacing_um: float | None = None,
                    fov_mm: float | None = None) -> np.ndarray:
    """Vessel probabilities float32 [H, W] of a raw image (any dtype/size)."""
    img = preprocess(as_float_image(image), self.config.data)
    scale = self.scale_for(img.shape[1], spacing_um, fov_mm)
    x = pipeline.resize(img, scale) if scale != 1.0 else img
    prob = tta_lib.average_image(self._probabilities, x, self.tta)
    return pipeline.resize(prob, shape=img.shape) if scale != 1.0 else prob

  def _probabilities(self, img: np.ndarray) -> np.ndarray:
    """Probabilities [H, W] of a preprocessed float32 image [H, W]."""
    h, w = img.shape
    if max(h, w) <= self.max_side:
      padded, size = tiling.pad_to_multiple(img, self.multiple)
      prob = self.batch_maps(padded[None, :, :, None])[self.output_name][0, ..., 0]
      return tiling.crop_back(prob, size)
    fn = lambda tiles: self.batch_maps(tiles)[self.output_name]
    return tiling.sliding_window(fn, img, self.tile, self.overlap, batch=1)

  def __call__(self, image: Any, *, threshold: str | float | None = None,
               spacing_um: float | None = None, fov_mm: float | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Returns (probabilities float32 [H, W], mask bool [H, W]).

    threshold: 'otsu' (per image), a float, or None for the model's default.
    """
    prob = self.probabilities(image, spacing_um=spacing_um, fov_mm=fov_mm)
    thr = self.config.eval.threshold if threshold is None else threshold
    mask, _ = metrics_lib.binarize(prob, thr)
    return prob, np.asarray(mask, bool)


def as_float_image(image: Any) -> np.ndarray:
  """numpy image -> float32 [H, W] in [0, 1].

  uint8 / uint16 are scaled by their maximum (255 / 65535), floats are taken
  as already in [0, 1] (clipped), RGB(A) is converted to luminance
  (ITU-R 601: 0.299 R + 0.587 G + 0.114 B).
  """
  a = np.asarray(image)
  if a.ndim == 3 and a.shape[-1] in (3, 4):
    a = a[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    a = a / (65535.0 if np.asarray(image).dtype == np.uint16 else
             255.0 if np.asarray(image).dtype == np.uint8 else 1.0)
  elif a.ndim == 3 and a.shape[-1] == 1:
    a = a[..., 0]
  if a.ndim != 2:
    raise UserError(f'expected an image [H, W] or [H, W, 3]; got shape {np.shape(image)}')
  if a.dtype == np.uint8:
    a = a / 255.0
  elif a.dtype == np.uint16:
    a = a / 65535.0
  elif a.dtype == bool or np.issubdtype(a.dtype, np.integer):
    a = a.astype(np.float64) / max(float(a.max()), 1.0)
  return np.clip(a, 0.0, 1.0).astype(np.float32)
