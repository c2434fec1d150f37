"""Inference from a training workdir: checkpoints -> probabilities and masks.

    from cosnet_jax.evaluation.inference import Segmenter
    seg = Segmenter.from_workdir('runs/quickstart')      # best checkpoints
    prob, mask = seg(image)       # image: numpy [H, W] or [H, W, 3], any size
    seg = Segmenter.from_workdir('runs/o3m', tta='flips')  # mean of 4 mirrors

The image goes through the same preprocessing as in training (intensity
scaling to [0, 1], CLAHE when the run used it), is padded bottom/right to a
multiple of 32 (or, above `max_side`, processed in overlapping tiles), and the
output is cropped back to the input size. With flip test-time augmentation
(`tta`, see `evaluation.tta`) the whole pipeline after preprocessing runs on
each mirror of the image and the mirrored-back probabilities are averaged.
"""

import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cosnet_jax import data as data_lib
from cosnet_jax import models
from cosnet_jax.evaluation import metrics as metrics_lib
from cosnet_jax.evaluation import tiling
from cosnet_jax.evaluation import tta as tta_lib
from cosnet_jax.models import fast_conv
from cosnet_jax.train.checkpoint import StageCheckpoints


class CheckpointNotFoundError(FileNotFoundError):
  """The workdir has no usable checkpoint (message names the folder)."""


def load_run_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  path = pathlib.Path(workdir) / 'config.json'
  if not path.is_file():
    raise CheckpointNotFoundError(
        f'{path} not found: {workdir} is not a cosnet_jax training workdir')
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def _variables(raw: dict) -> dict:
  """Inference variables of a restored state: its parameter average
  (`ema_params`, optimizer.ema_decay > 0) where it has one."""
  params = raw.get('ema_params') or raw['params']
  return {'params': params, 'batch_stats': raw.get('batch_stats', {})}


def load_variables(workdir: str | pathlib.Path, checkpoint: str | int = 'best'
                   ) -> tuple[dict, dict | None, dict]:
  """Restores the inference variables of a run.

  With a stage-2 checkpoint, stage 1 is the best stage-1 checkpoint (the one
  stage 2 was trained on) and `checkpoint` picks the stage-2 one; otherwise
  `checkpoint` picks the stage-1 one.

  Returns:
    (stage1 variables, stage2 variables or None, {'stage1': step, 'stage2': step}).
  """
  root = pathlib.Path(workdir) / 'checkpoints'
  if not (root / 'stage1').is_dir():   # checked first: the managers would create it
    raise CheckpointNotFoundError(f'no checkpoint to load in {root}: no stage1 folder')
  s1 = StageCheckpoints(root / 'stage1')
  s2 = StageCheckpoints(root / 'stage2')
  try:
    if s2.latest_step() is not None or s2.best.latest_step() is not None:
      raw1, step1 = s1.restore_raw('best')
      raw2, step2 = s2.restore_raw(checkpoint)
      return _variables(raw1), _variables(raw2), {'stage1': step1, 'stage2': step2}
    raw1, step1 = s1.restore_raw(checkpoint)
    return _variables(raw1), None, {'stage1': step1, 'stage2': None}
  except FileNotFoundError as e:
    raise CheckpointNotFoundError(f'no checkpoint to load in {root}: {e}') from None
  finally:
    s1.close()
    s2.close()


class Segmenter:
  """COSNet stage 1 (+ refinement) as a numpy-in / numpy-out function."""

  def __init__(self, config: ml_collections.ConfigDict, stage1_vars: dict,
               refine_vars: dict | None = None, *, max_side: int = 1024,
               tile: int = 512, overlap: int = 64, tta: str | None = None):
    self.config = config
    self.tta = tta if tta is not None else config.eval.get('tta', 'none')
    tta_lib.check_mode(self.tta, 'tta')
    self.model = models.build_cosnet(config.model)
    self.refiner = (models.build_refiner(config.refine.model)
                    if refine_vars is not None else None)
    self.stage1_vars = jax.device_put(stage1_vars)
    self.refine_vars = None if refine_vars is None else jax.device_put(refine_vars)
    self.max_side, self.tile, self.overlap = max_side, tile, overlap
    self.multiple = int(config.data.pad_multiple)
    self._forward = jax.jit(self._maps,
                            compiler_options=fast_conv.xla_compiler_options(mode='infer'))

  @classmethod
  def from_workdir(cls, workdir: str | pathlib.Path, checkpoint: str | int = 'best',
                   **kwargs) -> 'Segmenter':
    config = load_run_config(workdir)
    s1, s2, steps = load_variables(workdir, checkpoint)
    seg = cls(config, s1, s2, **kwargs)
    seg.steps = steps
    return seg

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

  def predict_maps(self, batch: np.ndarray) -> dict[str, np.ndarray]:
    """batch: float32 [B, H, W, 1], H and W multiples of 32."""
    return jax.device_get(self._forward(self.stage1_vars, self.refine_vars,
                                        jnp.asarray(batch, jnp.float32)))

  def probabilities(self, image: Any) -> np.ndarray:
    """Vessel probabilities float32 [H, W] of a raw image (any dtype/size)."""
    img = data_lib.preprocess(as_float_image(image), self.config.data)
    return tta_lib.average_image(self._probabilities, img, self.tta)

  def _probabilities(self, img: np.ndarray) -> np.ndarray:
    """Probabilities [H, W] of a preprocessed float32 image [H, W]."""
    h, w = img.shape
    if max(h, w) <= self.max_side:
      padded, size = tiling.pad_to_multiple(img, self.multiple)
      prob = self.predict_maps(padded[None, :, :, None])[self.output_name][0, ..., 0]
      return tiling.crop_back(prob, size)
    fn = lambda tiles: self.predict_maps(tiles)[self.output_name]
    return tiling.sliding_window(fn, img, self.tile, self.overlap, batch=1)

  def __call__(self, image: Any, *, threshold: str | float = 'otsu'
               ) -> tuple[np.ndarray, np.ndarray]:
    """Returns (probabilities float32 [H, W], mask bool [H, W])."""
    prob = self.probabilities(image)
    mask, _ = metrics_lib.binarize(prob, threshold)
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
    raise ValueError(f'expected an image [H, W] or [H, W, 3]; got shape {np.shape(image)}')
  if a.dtype == np.uint8:
    a = a / 255.0
  elif a.dtype == np.uint16:
    a = a / 65535.0
  elif a.dtype == bool or np.issubdtype(a.dtype, np.integer):
    a = a.astype(np.float64) / max(float(a.max()), 1.0)
  return np.clip(a, 0.0, 1.0).astype(np.float32)
