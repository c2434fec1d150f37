"""One branch's contrastive term: Otsu -> predict -> sample anchors -> loss."""
from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from cosnet_jax.contrast.config import check_contrast_config
from cosnet_jax.contrast.losses import pixel_contrast_loss
from cosnet_jax.contrast.memory_bank import MemoryBank, bank_contrast_set
from cosnet_jax.contrast.otsu import otsu_threshold
from cosnet_jax.contrast.sampling import (Anchors, compact_anchors,
                                          count_kept_classes, sample_anchors)

ContrastSet = Tuple[jax.Array, jax.Array, jax.Array]


def _squeeze_channel(x: jax.Array) -> jax.Array:
  return x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x


def branch_labels(target: jax.Array) -> jax.Array:
  """int32 [N, H, W] class map from a float {0,1} target [N, H, W(, 1)]
  (> 0.5, as the authors) or an integer map."""
  target = _squeeze_channel(target)
  if jnp.issubdtype(target.dtype, jnp.floating):
    return (target > 0.5).astype(jnp.int32)
  return target.astype(jnp.int32)


def contrast_branch_loss(embed: jax.Array, prob: jax.Array, labels: jax.Array,
                         valid: jax.Array, bank: Optional[MemoryBank],
                         image_keys: jax.Array, cfg,
                         total_classes: Optional[jax.Array] = None,
                         extra_contrast: Optional[ContrastSet] = None,
                         axis_name: Optional[str] = None
                         ) -> Tuple[jax.Array, jax.Array, Anchors]:
  """Contrastive term of one branch (binary: class 1 = vessel).

  Args:
    embed: float [N, H, W, D] L2-normalised embeddings of the branch.
    prob: float [N, H, W(, 1)] the branch's sigmoid probabilities (the model's
      `thick` / `thin`); stop-gradient. Prediction = prob > Otsu threshold of
      the image's valid pixels.
    labels: [N, H, W(, 1)] the branch's target (float {0,1} or int classes).
    valid: [N, H, W(, 1)] bool/float, 1 = real pixel.
    bank: the branch's MemoryBank (may be None when `cfg.use_memory` is off).
    image_keys: [N] PRNG keys, one per image.
    cfg: `config.contrast`.
    total_classes: kept (image, class) pairs over the global batch (psum of
      `count_kept_classes`); None = this batch, or its psum over `axis_name`.
    extra_contrast: optional (feat [K, D], label [K], valid [K]) appended to
      the contrast set as constants.
    axis_name: inside a data-parallel map (shard_map / pmap), the device
      axis: the anchor budget is shared over the global batch and in-batch
      contrast (`cfg.in_batch`) sees every device's anchors. This is the
      function the train step calls.

  With `cfg.in_batch` the anchors are also contrasted with a DETACHED copy of
  the (global) batch's anchors, each excluding itself: the copy acts like the
  memory, a fixed key set, so the gradient is the same for any device count.

  Returns:
    (loss_sum, num_valid, anchors): this device's sums, see
    `pixel_contrast_loss`; mean = loss_sum / max(num_valid, 1) after any psum.
    `anchors` are compacted to min(max_samples, N*C*max_views) rows, valid
    ones first.
  """
  check_contrast_config(cfg)
  num_classes = int(cfg.num_classes)
  if num_classes != 2:
    raise ValueError('config.contrast.num_classes: contrast_branch_loss '
                     f'predicts by Otsu, binary only (got {num_classes})')
  d = embed.shape[-1]
  if cfg.use_memory:
    if bank is None:
      raise ValueError('contrast_branch_loss: config.contrast.use_memory is '
                       'True but no memory bank was given')
    if bank.num_classes != num_classes or bank.dim != d:
      raise ValueError(
          f'contrast_branch_loss: bank is [C={bank.num_classes}, '
          f'D={bank.dim}] but config.contrast.num_classes={num_classes} and '
          f'the embedding dim is {d}')
  lab = branch_labels(labels)
  val = _squeeze_channel(valid)
  if jnp.issubdtype(val.dtype, jnp.floating):
    val = val > 0.5
  val = val.astype(bool)
  p = jax.lax.stop_gradient(_squeeze_channel(prob)).astype(jnp.float32)
  thr = otsu_threshold(p, val)
  pred = (p > thr[:, None, None]).astype(jnp.int32)
  if total_classes is None and axis_name is not None:
    total_classes = jax.lax.psum(count_kept_classes(
        lab, val, num_classes, int(cfg.min_pixels)), axis_name)
  anchors = sample_anchors(
      embed, lab, pred, val, image_keys, num_classes=num_classes,
      max_samples=int(cfg.max_samples), max_views=int(cfg.max_views),
      min_pixels=int(cfg.min_pixels), total_classes=total_classes,
      hard_fraction=float(cfg.hard_fraction))
  # At most max_samples anchors are valid: drop the padding slots.
  anchors = compact_anchors(anchors, int(cfg.max_samples))

  parts = []   # (feat [K, D], label [K], valid [K]) pieces of the set
  if cfg.use_memory:
    parts.append(bank_contrast_set(
        bank, classes=tuple(int(c) for c in cfg.enqueue_classes)))
  if extra_contrast is not None:
    e_feat, e_label, e_valid = extra_contrast
    parts.append((jax.lax.stop_gradient(e_feat).astype(jnp.float32),
                  e_label.astype(jnp.int32), e_valid.astype(bool)))
  self_index = None
  if cfg.in_batch:
    gather = ((lambda x: x) if axis_name is None else
              (lambda x: jax.lax.all_gather(x, axis_name, tiled=True)))
    n_local = anchors.feat.shape[0]
    first = 0 if axis_name is None else jax.lax.axis_index(axis_name) * n_local
    self_index = sum(x[0].shape[0] for x in parts) + first + jnp.arange(n_local)
    parts.append((jax.lax.stop_gradient(gather(anchors.feat)),
                  gather(anchors.label), gather(anchors.valid)))
  if not parts:
    raise ValueError('config.contrast: use_memory and in_batch are both False; '
                     'set contrast.weight=0 to train without contrast')
  c_feat, c_label, c_valid = (jnp.concatenate(x, axis=0) for x in zip(*parts))
  loss_sum, num_valid = pixel_contrast_loss(
      anchors, c_feat, c_label, c_valid,
      temperature=float(cfg.temperature),
      base_temperature=float(cfg.base_temperature), self_index=self_index)
  return loss_sum, num_valid, anchors
