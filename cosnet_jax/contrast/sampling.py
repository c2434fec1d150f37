"""Mixed (hard / easy) anchor sampling with static shapes.

Per (image, class) with more than `min_pixels` ground-truth pixels, anchors
are drawn uniformly without replacement, half "hard" (gt = c, prediction != c)
and half "easy" (gt = c, prediction = c), filling from the other kind when one
runs short (`hard_fraction` moves the split: 0.5 is the method, 0 easy
first); per (image, class) `n_view = min(max_samples // total_classes,
max_views)` anchors (the authors' `_hard_anchor_sampling`). Unlike the authors
nothing raises when both kinds are short: what exists is taken.
"""
from typing import Optional

import flax
import jax
import jax.numpy as jnp

from cosnet_jax.contrast.top_k import top_k_last_axis


@flax.struct.dataclass
class Anchors:
  feat: jax.Array   # float32 [M, D] (zeros where not valid)
  label: jax.Array  # int32 [M]
  valid: jax.Array  # bool [M]


def _class_masks(labels: jax.Array, valid: jax.Array, num_classes: int
                 ) -> jax.Array:
  """bool [N, C, HW]: valid pixels of each class."""
  n = labels.shape[0]
  lab = labels.reshape(n, -1)
  val = valid.reshape(n, -1).astype(bool)
  classes = jnp.arange(num_classes)
  return (lab[:, None, :] == classes[None, :, None]) & val[:, None, :]


def count_kept_classes(labels: jax.Array, valid: jax.Array, num_classes: int,
                       min_pixels: int) -> jax.Array:
  """int32 scalar: (image, class) pairs with more than `min_pixels` pixels.

  labels int [N, H, W], valid bool [N, H, W]. A data-parallel caller psums
  this over devices and passes it as `total_classes` to `sample_anchors`.
  """
  counts = jnp.sum(_class_masks(labels, valid, num_classes), axis=-1)
  return jnp.sum(counts > min_pixels).astype(jnp.int32)


def sample_anchors(embed: jax.Array, labels: jax.Array, pred: jax.Array,
                   valid: jax.Array, image_keys: jax.Array, *,
                   num_classes: int, max_samples: int, max_views: int,
                   min_pixels: int,
                   total_classes: Optional[jax.Array] = None,
                   hard_fraction: float = 0.5) -> Anchors:
  """Samples anchors per (image, class) into fixed slots.

  Args:
    embed: float [N, H, W, D] pixel embeddings (gradients flow to the sampled
      pixels only).
    labels: int [N, H, W] ground-truth class.
    pred: int/bool [N, H, W] predicted class.
    valid: bool [N, H, W]; invalid pixels are never sampled nor counted.
    image_keys: [N] PRNG keys (typed, or raw uint32 [N, 2]), one per image, so
      the draw of an image does not depend on how the batch is split.
    num_classes: C.
    max_samples: anchors per batch (over all kept (image, class) pairs).
    max_views: anchors per (image, class) at most; slot count per pair.
    min_pixels: a pair is kept when it has MORE than this many pixels.
    total_classes: int scalar, kept pairs over the global batch (e.g. the
      psum of `count_kept_classes`); None = counted on this batch. Values
      below the local count are raised to it, so that at most `max_samples`
      anchors are valid.
    hard_fraction: static; share of each pair's `n_view` slots meant for hard
      anchors, floor(n_view * hard_fraction) (0.5: the authors' half and
      half). Either kind still fills the slots the other cannot.

  Returns:
    Anchors with M = N*C*max_views rows, ordered (image, class, slot); in each
    (image, class) block the hard anchors come first, then the easy ones.
  """
  n, h, w, d = embed.shape
  hw = h * w
  if not 0.0 <= float(hard_fraction) <= 1.0:
    raise ValueError(f'config.contrast.hard_fraction={hard_fraction}: expected a '
                     'share in [0, 1]')
  if max_views > hw:
    raise ValueError(f'contrast.max_views={max_views} exceeds the {hw} pixels '
                     'of an image')
  is_c = _class_masks(labels, valid, num_classes)                # [N, C, HW]
  classes = jnp.arange(num_classes)
  correct = pred.reshape(n, 1, hw).astype(jnp.int32) == classes[None, :, None]
  hard = is_c & ~correct
  easy = is_c & correct
  count = jnp.sum(is_c, axis=-1)                                 # [N, C]
  n_hard = jnp.sum(hard, axis=-1)
  n_easy = count - n_hard
  kept = count > min_pixels
  local_total = jnp.sum(kept).astype(jnp.int32)
  if total_classes is None:
    total_classes = local_total
  # Never below the local count, so at most max_samples anchors are valid.
  total = jnp.maximum(jnp.asarray(total_classes, jnp.int32), local_total)
  total = jnp.maximum(total, 1)
  n_view = jnp.minimum(max_samples // total, max_views)
  h_target = jnp.floor(n_view.astype(jnp.float32) * float(hard_fraction)
                       ).astype(jnp.int32)
  e_target = n_view - h_target
  h_keep = jnp.where(n_hard < h_target, n_hard,
                     jnp.where(n_easy < e_target,
                               jnp.minimum(n_hard, n_view - n_easy), h_target))
  e_keep = jnp.minimum(n_easy, n_view - h_keep)
  h_keep = jnp.where(kept, h_keep, 0)
  e_keep = jnp.where(kept, e_keep, 0)

  # Uniform sampling without replacement: top-k of random scores restricted
  # to each kind's pixels.
  u = jax.vmap(lambda k: jax.random.uniform(k, (hw,)))(image_keys)  # [N, HW]
  # One top_k per kind, each consumed whole: slicing one stacked top_k along a
  # leading axis made XLA:CPU fall back to a full sort (~10x slower at 8 x 96^2).
  hard_top, hard_idx = top_k_last_axis(jnp.where(hard, u[:, None, :], -1.0),
                                       max_views)                # [N, C, V]
  easy_top, easy_idx = top_k_last_axis(jnp.where(easy, u[:, None, :], -1.0),
                                       max_views)

  slot = jnp.arange(max_views)
  from_hard = slot < h_keep[..., None]                           # [N, C, V]
  easy_pos = jnp.clip(slot - h_keep[..., None], 0, max_views - 1)
  easy_idx = jnp.take_along_axis(easy_idx, easy_pos, axis=-1)
  easy_top = jnp.take_along_axis(easy_top, easy_pos, axis=-1)
  pix = jnp.where(from_hard, hard_idx, easy_idx)                 # [N, C, V]
  picked = jnp.where(from_hard, hard_top, easy_top) >= 0.0
  slot_valid = (slot < (h_keep + e_keep)[..., None]) & picked

  emb = embed.reshape(n, hw, d)
  feat = jax.vmap(lambda e, i: e[i])(emb, pix)                   # [N,C,V,D]
  feat = jnp.where(slot_valid[..., None], feat, 0.0).astype(jnp.float32)
  label = jnp.broadcast_to(classes[None, :, None].astype(jnp.int32), pix.shape)
  m = n * num_classes * max_views
  return Anchors(feat=feat.reshape(m, d), label=label.reshape(m),
                 valid=slot_valid.reshape(m))


def compact_anchors(anchors: Anchors, size: int) -> Anchors:
  """The valid anchors first (in order), padded / cut to `size` rows.

  With `size` >= the number of valid anchors (e.g. `max_samples` for the
  output of `sample_anchors`) nothing valid is dropped; the loss then costs
  size rows instead of N*C*max_views.
  """
  m = anchors.valid.shape[0]
  size = min(int(size), m)
  order = jnp.arange(m, dtype=jnp.float32)
  key = jnp.where(anchors.valid, float(m) - order, -order)
  _, idx = top_k_last_axis(key, size)
  return Anchors(feat=anchors.feat[idx], label=anchors.label[idx],
                 valid=anchors.valid[idx])
