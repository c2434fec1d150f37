"""Memory bank: init, select_for_enqueue, enqueue vs a NumPy ring buffer."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cosnet_jax.contrast import (EnqueueItems, bank_contrast_set,
                                 enqueue,
                                 init_memory_bank, init_memory_bank_from_config,
                                 select_for_enqueue, update_memory_bank)
from cosnet_jax import config as config_lib

C, L, D = 2, 5, 4


class RingBank:
  """Sequential reference: one slot per valid item, pointer += 1 mod L."""

  def __init__(self, bank):
    self.pix = np.array(bank.pixel_queue)
    self.seg = np.array(bank.segment_queue)
    self.pix_ptr = np.array(bank.pixel_ptr)
    self.seg_ptr = np.array(bank.segment_ptr)
    self.pix_filled = np.array(bank.pixel_filled)
    self.seg_filled = np.array(bank.segment_filled)

  def push(self, items, classes=None):
    seg = np.asarray(items.seg).reshape(-1, C, D)
    seg_valid = np.asarray(items.seg_valid).reshape(-1, C)
    k = items.pix.shape[-2]
    pix = np.asarray(items.pix).reshape(-1, C, k, D)
    pix_valid = np.asarray(items.pix_valid).reshape(-1, C, k)
    for n in range(seg.shape[0]):
      for c in range(C):
        if classes is not None and c not in classes:
          continue
        if seg_valid[n, c]:
          self.seg[c, self.seg_ptr[c]] = seg[n, c]
          self.seg_ptr[c] = (self.seg_ptr[c] + 1) % L
          self.seg_filled[c] = min(self.seg_filled[c] + 1, L)
        for j in range(k):
          if pix_valid[n, c, j]:
            self.pix[c, self.pix_ptr[c]] = pix[n, c, j]
            self.pix_ptr[c] = (self.pix_ptr[c] + 1) % L
            self.pix_filled[c] = min(self.pix_filled[c] + 1, L)

  def check(self, bank):
    np.testing.assert_array_equal(np.asarray(bank.pixel_queue), self.pix)
    np.testing.assert_array_equal(np.asarray(bank.segment_queue), self.seg)
    np.testing.assert_array_equal(np.asarray(bank.pixel_ptr), self.pix_ptr)
    np.testing.assert_array_equal(np.asarray(bank.segment_ptr), self.seg_ptr)
    np.testing.assert_array_equal(np.asarray(bank.pixel_filled),
                                  self.pix_filled)
    np.testing.assert_array_equal(np.asarray(bank.segment_filled),
                                  self.seg_filled)


def _random_items(rng, n, k, p_valid):
  return EnqueueItems(
      seg=rng.normal(size=(n, C, D)).astype(np.float32),
      seg_valid=rng.random((n, C)) < p_valid,
      pix=rng.normal(size=(n, C, k, D)).astype(np.float32),
      pix_valid=rng.random((n, C, k)) < p_valid)


def test_init_is_unit_random_with_zero_pointers():
  bank = init_memory_bank(jax.random.PRNGKey(0), num_classes=C, queue_len=L,
                          dim=D)
  assert bank.pixel_queue.shape == bank.segment_queue.shape == (C, L, D)
  np.testing.assert_allclose(np.linalg.norm(bank.pixel_queue, axis=-1), 1.0,
                             rtol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(bank.segment_queue, axis=-1), 1.0,
                             rtol=1e-6)
  assert not np.allclose(bank.pixel_queue, bank.segment_queue)
  for x in (bank.pixel_ptr, bank.segment_ptr, bank.pixel_filled):
    assert x.dtype == jnp.int32 and not np.asarray(x).any()
  cfg = config_lib.contrast_config()
  big = init_memory_bank_from_config(jax.random.PRNGKey(0), cfg, 8)
  assert big.pixel_queue.shape == (2, 400, 8)


@pytest.mark.parametrize('p_valid', [1.0, 0.6])
def test_enqueue_matches_ring_buffer(p_valid):
  rng = np.random.default_rng(0)
  bank = init_memory_bank(jax.random.PRNGKey(1), num_classes=C, queue_len=L,
                          dim=D)
  ref = RingBank(bank)
  step = jax.jit(enqueue)
  # Sizes chosen so pointers wrap, and one batch writes more than L items.
  for n, k in [(1, 3), (2, 3), (3, 2), (4, 3)]:
    items = _random_items(rng, n, k, p_valid)
    bank = step(bank, items)
    ref.push(items)
    ref.check(bank)


def test_enqueue_leading_batch_shape_and_classes():
  rng = np.random.default_rng(1)
  bank = init_memory_bank(jax.random.PRNGKey(2), num_classes=C, queue_len=L,
                          dim=D)
  ref = RingBank(bank)
  flat = _random_items(rng, 6, 2, 0.7)
  gathered = jax.tree.map(lambda x: x.reshape((2, 3) + x.shape[1:]), flat)
  new = jax.jit(lambda b, i: enqueue(b, i, classes=(1,)))(bank, gathered)
  ref.push(flat, classes=(1,))
  ref.check(new)
  np.testing.assert_array_equal(new.pixel_queue[0], bank.pixel_queue[0])


def test_frozen_bank_is_never_updated():
  rng = np.random.default_rng(2)
  bank = init_memory_bank(jax.random.PRNGKey(3), num_classes=C, queue_len=L,
                          dim=D)
  items = _random_items(rng, 2, 3, 1.0)
  cfg = config_lib.contrast_config()
  cfg.freeze_memory_bank = True
  same = jax.jit(lambda b, i: update_memory_bank(b, i, cfg))(bank, items)
  for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(bank)):
    np.testing.assert_array_equal(a, b)
  cfg.freeze_memory_bank = False
  moved = jax.jit(lambda b, i: update_memory_bank(b, i, cfg))(bank, items)
  assert np.asarray(moved.pixel_ptr).tolist() == [1, 1]   # 6 writes mod 5


def _scene(rng, n=2, h=6, w=5):
  embed = rng.normal(size=(n, h, w, D)).astype(np.float32)
  labels = np.zeros((n, h, w), np.int32)
  labels[0, :2, :2] = 1          # image 0: 4 class-1 pixels
  labels[1, 0, 0] = 1            # image 1: 1 class-1 pixel ...
  valid = np.ones((n, h, w), bool)
  valid[1, 0, 0] = False         # ... which is padding
  labels[1, 1, 1] = 1            # and one real class-1 pixel
  return embed, labels, valid


def test_select_for_enqueue_partial_writes():
  rng = np.random.default_rng(3)
  embed, labels, valid = _scene(rng)
  k = 3
  items = jax.jit(lambda e, key: select_for_enqueue(
      e, labels, valid, key, num_classes=C, pixels_per_image=k))(
          embed, jax.random.PRNGKey(0))
  assert items.pix.shape == (2, C, k, D) and items.seg.shape == (2, C, D)
  np.testing.assert_array_equal(items.seg_valid, [[True, True], [True, True]])
  # Fewer valid pixels than asked -> fewer written, zeros elsewhere.
  np.testing.assert_array_equal(np.sum(items.pix_valid, -1), [[3, 3], [3, 1]])
  assert not np.asarray(items.pix)[~np.asarray(items.pix_valid)].any()
  unit = embed / np.linalg.norm(embed, axis=-1, keepdims=True)
  for n in range(2):
    for c in range(C):
      member = (labels[n] == c) & valid[n]
      mean = embed[n][member].mean(0)
      np.testing.assert_allclose(items.seg[n, c], mean / np.linalg.norm(mean),
                                 rtol=1e-5, atol=1e-6)
      chosen = np.asarray(items.pix[n, c])[np.asarray(items.pix_valid[n, c])]
      allowed = unit[n][member]
      hits = [int(np.argmin(np.abs(allowed - v).sum(-1))) for v in chosen]
      for v, i in zip(chosen, hits):     # each is a pixel of that class
        np.testing.assert_allclose(v, allowed[i], rtol=1e-5, atol=1e-6)
      assert len(set(hits)) == len(hits)  # without replacement
  # Enqueue of these partial items advances pointers by what was written.
  bank = init_memory_bank(jax.random.PRNGKey(0), num_classes=C, queue_len=L,
                          dim=D)
  ref = RingBank(bank)
  bank = jax.jit(enqueue)(bank, items)
  ref.push(items)
  ref.check(bank)
  assert np.asarray(bank.pixel_ptr).tolist() == [(3 + 3) % L, (3 + 1) % L]


def test_select_for_enqueue_is_stop_gradient():
  rng = np.random.default_rng(4)
  embed, labels, valid = _scene(rng)

  def f(e):
    it = select_for_enqueue(e, labels, valid, jax.random.PRNGKey(0),
                            num_classes=C, pixels_per_image=2)
    return jnp.sum(it.seg) + jnp.sum(it.pix)

  assert not np.asarray(jax.jit(jax.grad(f))(jnp.asarray(embed))).any()


def test_bank_contrast_set():
  bank = init_memory_bank(jax.random.PRNGKey(5), num_classes=C, queue_len=L,
                          dim=D)
  feat, label, valid = bank_contrast_set(bank)
  assert feat.shape == (C * 2 * L, D) and valid.all()
  np.testing.assert_array_equal(label, np.repeat(np.arange(C), 2 * L))
  np.testing.assert_array_equal(feat[:L], bank.segment_queue[0])
  np.testing.assert_array_equal(feat[L:2 * L], bank.pixel_queue[0])
  np.testing.assert_array_equal(feat[2 * L:3 * L], bank.segment_queue[1])
  # The authors' set: only class 1 stored, class-0 rows are zero vectors.
  feat1, label1, _ = bank_contrast_set(bank, classes=(1,))
  assert not np.asarray(feat1[:2 * L]).any()
  np.testing.assert_array_equal(feat1[2 * L:], feat[2 * L:])
  np.testing.assert_array_equal(label1, label)
  g = jax.grad(lambda q: jnp.sum(bank_contrast_set(
      bank.replace(pixel_queue=q[0], segment_queue=q[1]))[0]))(
          (bank.pixel_queue, bank.segment_queue))
  assert not np.asarray(g[0]).any() and not np.asarray(g[1]).any()
