"""Runs a jitted, data-parallel prediction step over a whole dataset split.

Every process reads the (small) evaluation split in full and feeds its own
rows of each global batch; the sharded outputs are gathered back so every
process holds all predictions (cropped to each image's original size).
"""

from typing import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from cosnet_jax.data import pipeline
from cosnet_jax.evaluation import metrics as metrics_lib
from cosnet_jax.inference import tta as tta_lib
from cosnet_jax.sharding import shard_batch


def split_maps(step: Callable, data_cfg, split: str, mesh, *,
                  batch_size: int, outputs: tuple[str, ...],
                  tta: str = 'none') -> list[dict]:
  """The maps of every image of a split.

  Args:
    step: jitted fn(global_batch) -> dict of sharded [B, H, W, 1] maps.
    data_cfg: config.data.
    split: split name.
    mesh: the ('data',) mesh the step runs on.
    batch_size: global batch (multiple of the device count).
    outputs: names of the maps to keep.
    tta: test-time augmentation ('none', 'hflip', 'flips', 'flips_shifts';
      see `inference.tta`): each output is the mean of the mirrored /
      shifted passes, moved back.
  Returns:
    One dict per real image: `id`, `image`, `mask` [h, w] float32, and each
    requested output [h, w] float32, cropped (and, where the dataset's spacing
    differs from the model's, resampled back) to the file's size.
  """
  tta_lib.check_mode(tta)
  pc, pi = jax.process_count(), jax.process_index()
  local = batch_size // pc
  results = []
  for batch in pipeline.make_eval_batches(data_cfg, split, batch_size=batch_size,
                                          process_index=0, process_count=1):
    valid = np.asarray(batch['valid'][pi * local:(pi + 1) * local])

    def predict(image, valid=valid):
      # Every process holds the whole global batch; each feeds its own rows.
      mine = {'image': np.asarray(image[pi * local:(pi + 1) * local]), 'valid': valid}
      out = step(shard_batch(mine, mesh))
      if pc > 1:
        out = {k: multihost_utils.process_allgather(out[k], tiled=True) for k in outputs}
      return {k: np.asarray(jax.device_get(out[k]), np.float32) for k in outputs}

    out = tta_lib.average_batch(predict, np.asarray(batch['image']), batch['height'],
                                batch['width'], tta, outputs)
    for i, image_id in enumerate(batch['id']):
      if not image_id:  # dummy filler example
        continue
      h, w = int(batch['height'][i]), int(batch['width'][i])
      image, mask = batch['original'][i]
      item = {'id': str(image_id), 'image': image, 'mask': mask}
      for k in outputs:
        item[k] = pipeline.resize(out[k][i, :h, :w, 0], shape=image.shape)
      results.append(item)
  return results


def score(results: list[dict], output: str, *, threshold='otsu',
          tolerance: int = 0) -> list[dict]:
  """Per-image metrics of one output map against the mask."""
  return [dict(id=r['id'], **metrics_lib.image_metrics(
      r[output], r['mask'], None, threshold=threshold, tolerance=tolerance))
          for r in results]


def mean_metric(per_image: list[dict], name: str) -> float:
  return float(np.mean([m[name] for m in per_image])) if per_image else float('nan')
