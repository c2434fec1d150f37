"""Per-branch memory bank: per class a pixel queue and a segment queue.

The bank is an immutable pytree; `enqueue` returns a new one. Queues are ring
buffers of shape [C, L, D] (C classes, L = queue_len slots, D = embedding dim);
`*_ptr` [C] is the next slot to write and `*_filled` [C] counts the slots
written so far (capped at L; slots never written still hold the random init).
"""
from typing import Optional, Sequence, Tuple

import flax
import jax
import jax.numpy as jnp

from cosnet_jax.contrast.top_k import top_k_last_axis


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||, eps) along `axis` (torch.nn.functional.normalize)."""
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x / jnp.maximum(norm, eps)


@flax.struct.dataclass
class MemoryBank:
  pixel_queue: jax.Array    # float32 [C, L, D]
  segment_queue: jax.Array  # float32 [C, L, D]
  pixel_ptr: jax.Array      # int32 [C]
  segment_ptr: jax.Array    # int32 [C]
  pixel_filled: jax.Array   # int32 [C], slots written so far (<= L)
  segment_filled: jax.Array  # int32 [C]

  @property
  def num_classes(self) -> int:
    return self.pixel_queue.shape[0]

  @property
  def queue_len(self) -> int:
    return self.pixel_queue.shape[1]

  @property
  def dim(self) -> int:
    return self.pixel_queue.shape[2]


@flax.struct.dataclass
class EnqueueItems:
  """What one batch writes into a bank (N images, C classes, K pixels)."""
  seg: jax.Array        # float32 [N, C, D], L2-normalised class means
  seg_valid: jax.Array  # bool [N, C], class present in the image
  pix: jax.Array        # float32 [N, C, K, D], L2-normalised pixel embeddings
  pix_valid: jax.Array  # bool [N, C, K]


def init_memory_bank(rng: jax.Array, *, num_classes: int, queue_len: int,
                     dim: int) -> MemoryBank:
  """Random normal, L2-normalised queues (as the authors); pointers at 0."""
  k_pix, k_seg = jax.random.split(rng)
  shape = (num_classes, queue_len, dim)
  zeros = jnp.zeros((num_classes,), jnp.int32)
  return MemoryBank(
      pixel_queue=l2_normalize(jax.random.normal(k_pix, shape, jnp.float32)),
      segment_queue=l2_normalize(jax.random.normal(k_seg, shape, jnp.float32)),
      pixel_ptr=zeros, segment_ptr=zeros,
      pixel_filled=zeros, segment_filled=zeros)


def init_memory_bank_from_config(rng: jax.Array, contrast_cfg,
                                 dim: int) -> MemoryBank:
  """`init_memory_bank` with `num_classes`, `queue_len` from `config.contrast`."""
  return init_memory_bank(rng, num_classes=int(contrast_cfg.num_classes),
                          queue_len=int(contrast_cfg.queue_len), dim=dim)


def select_for_enqueue(embed: jax.Array, labels: jax.Array, valid: jax.Array,
                       rng: jax.Array, *, num_classes: int,
                       pixels_per_image: int) -> EnqueueItems:
  """Picks what a batch writes into the bank (stop-gradient inside).

  Args:
    embed: float [N, H, W, D] pixel embeddings.
    labels: int [N, H, W] class per pixel.
    valid: bool [N, H, W]; invalid pixels are never selected nor averaged.
    rng: one PRNG key for the batch.
    num_classes: C.
    pixels_per_image: K, random pixels per (image, class), drawn uniformly
      without replacement; fewer when the class has fewer pixels.

  Returns:
    EnqueueItems: seg [N, C, D] = L2-normalised mean embedding of each class,
    seg_valid [N, C] (class has a valid pixel), pix [N, C, K, D] (zeros where
    not valid), pix_valid [N, C, K].
  """
  n, h, w, d = embed.shape
  hw = h * w
  if pixels_per_image > hw:
    raise ValueError(f'contrast.pixels_per_image={pixels_per_image} exceeds '
                     f'the {hw} pixels of an image')
  emb = jax.lax.stop_gradient(embed).reshape(n, hw, d).astype(jnp.float32)
  lab = labels.reshape(n, hw)
  val = valid.reshape(n, hw).astype(bool)
  classes = jnp.arange(num_classes)
  member = (lab[:, None, :] == classes[None, :, None]) & val[:, None, :]
  # Class sums [N, C, D]; normalising the sum equals normalising the mean.
  sums = jnp.einsum('nch,nhd->ncd', member.astype(emb.dtype), emb)
  seg_valid = jnp.any(member, axis=-1)
  seg = jnp.where(seg_valid[..., None], l2_normalize(sums), 0.0)

  u = jax.random.uniform(rng, (n, hw))
  scores = jnp.where(member, u[:, None, :], -1.0)           # [N, C, HW]
  top, idx = top_k_last_axis(scores, pixels_per_image)  # [N, C, K]
  pix_valid = top >= 0.0
  pix = jax.vmap(lambda e, i: e[i])(emb, idx)               # [N, C, K, D]
  pix = jnp.where(pix_valid[..., None], l2_normalize(pix), 0.0)
  return EnqueueItems(seg=seg, seg_valid=seg_valid, pix=pix,
                      pix_valid=pix_valid)


def _class_mask(num_classes: int, classes: Sequence[int]) -> jax.Array:
  """bool [C]: True for the (static) listed classes."""
  listed = {int(k) for k in classes}
  return jnp.asarray([k in listed for k in range(num_classes)])


def _ring_write(queue: jax.Array, ptr: jax.Array, filled: jax.Array,
                new: jax.Array, valid: jax.Array
                ) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """Writes the valid rows of `new` [C, M, D] in order at ptr, ptr+1, ... (mod L).

  Invalid rows write nothing; when more than L rows are valid only the last L
  are kept (what a sequential ring buffer ends with). Pointers advance by the
  number of valid rows.
  """
  c, queue_len, _ = queue.shape
  count = valid.astype(jnp.int32)
  rank = jnp.cumsum(count, axis=1) - 1                      # [C, M]
  total = jnp.sum(count, axis=1)                            # [C]
  keep = valid & (rank >= total[:, None] - queue_len)
  slot = jnp.where(keep, (ptr[:, None] + rank) % queue_len, queue_len)
  rows = jnp.broadcast_to(jnp.arange(c)[:, None], slot.shape)
  queue = queue.at[rows, slot].set(new.astype(queue.dtype), mode='drop')
  ptr = ((ptr + total) % queue_len).astype(jnp.int32)
  filled = jnp.minimum(filled + total, queue_len).astype(jnp.int32)
  return queue, ptr, filled


def enqueue(bank: MemoryBank, items: EnqueueItems, *,
            classes: Optional[Sequence[int]] = None,
            frozen: bool = False) -> MemoryBank:
  """Writes a batch's items into the bank; pure and jittable.

  Args:
    bank: the current bank.
    items: from `select_for_enqueue`; any leading batch shape (e.g. an
      all-gathered [devices, n, ...] or [N, ...]); written in row-major image
      order, and per image the K pixels in order.
    classes: static; only these classes are written (None = all).
    frozen: static; True returns `bank` unchanged (the authors' released code).

  Returns:
    The new bank. Per class, each valid segment item takes one slot of the
    segment queue and each valid pixel one slot of the pixel queue.
  """
  if frozen:
    return bank
  c, _, d = bank.pixel_queue.shape
  k = items.pix.shape[-2]
  seg = items.seg.reshape(-1, c, d)
  seg_valid = items.seg_valid.reshape(-1, c).astype(bool)
  pix = items.pix.reshape(-1, c, k, d)
  pix_valid = items.pix_valid.reshape(-1, c, k).astype(bool)
  if classes is not None:
    class_on = _class_mask(c, classes)
    seg_valid = seg_valid & class_on[None, :]
    pix_valid = pix_valid & class_on[None, :, None]
  seg = jax.lax.stop_gradient(seg)
  pix = jax.lax.stop_gradient(pix)

  seg_q, seg_ptr, seg_filled = _ring_write(
      bank.segment_queue, bank.segment_ptr, bank.segment_filled,
      jnp.swapaxes(seg, 0, 1), jnp.swapaxes(seg_valid, 0, 1))
  # [N, C, K, D] -> [C, N*K, D]: image-major, then pixel order.
  pix_rows = jnp.moveaxis(pix, 1, 0).reshape(c, -1, d)
  pix_rows_valid = jnp.moveaxis(pix_valid, 1, 0).reshape(c, -1)
  pix_q, pix_ptr, pix_filled = _ring_write(
      bank.pixel_queue, bank.pixel_ptr, bank.pixel_filled, pix_rows,
      pix_rows_valid)
  return bank.replace(pixel_queue=pix_q, segment_queue=seg_q,
                      pixel_ptr=pix_ptr, segment_ptr=seg_ptr,
                      pixel_filled=pix_filled, segment_filled=seg_filled)


def update_memory_bank(bank: MemoryBank, items: EnqueueItems,
                       contrast_cfg) -> MemoryBank:
  """`enqueue` as `config.contrast` asks: skipped when `freeze_memory_bank` or
  not `use_memory`; writes only `enqueue_classes`."""
  frozen = bool(contrast_cfg.freeze_memory_bank) or not contrast_cfg.use_memory
  return enqueue(bank, items,
                 classes=tuple(int(c) for c in contrast_cfg.enqueue_classes),
                 frozen=frozen)


def bank_contrast_set(bank: MemoryBank,
                      classes: Optional[Sequence[int]] = None
                      ) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """The bank as a contrast set (stop-gradient).

  Args:
    bank: a MemoryBank with C classes and L slots.
    classes: static; the classes whose queues are used (None = all). Rows of
      the other classes are zero vectors that keep their label, which is what
      the authors' `_sample_negative` builds when only class 1 is stored.

  Returns:
    feat float32 [C*2L, D] (per class: its L segment slots then its L pixel
    slots), label int32 [C*2L], valid bool [C*2L] (all True).
  """
  c, length, d = bank.pixel_queue.shape
  q = jnp.concatenate([bank.segment_queue, bank.pixel_queue], axis=1)
  q = jax.lax.stop_gradient(q).astype(jnp.float32)
  if classes is not None:
    class_on = _class_mask(c, classes)
    q = jnp.where(class_on[:, None, None], q, 0.0)
  feat = q.reshape(c * 2 * length, d)
  label = jnp.repeat(jnp.arange(c, dtype=jnp.int32), 2 * length)
  valid = jnp.ones((c * 2 * length,), bool)
  return feat, label, valid
