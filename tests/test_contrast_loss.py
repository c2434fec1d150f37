"""Pixel contrastive loss vs a NumPy reference; segmentation losses; the
whole branch loss (finite, jittable, gradients only through anchors)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cosnet_jax.contrast import (Anchors, check_contrast_config,
                                 combine_losses, contrast_branch_loss,
                                 init_memory_bank,
                                 l2_normalize, pixel_contrast_loss,
                                 segmentation_loss)
from cosnet_jax import config as config_lib

T, TB = 0.07, 0.07


def reference_loss(a, a_lab, a_val, c, c_lab, c_val, t, tb, self_contrast):
  """Straight from the formula, float64, loops."""
  a, c = np.float64(a), np.float64(c)
  if self_contrast:
    k0 = len(c)
    c = np.concatenate([c, a])
    c_lab = np.concatenate([c_lab, a_lab])
    c_val = np.concatenate([c_val, a_val])
  total, count = 0.0, 0
  for i in range(len(a)):
    if not a_val[i]:
      continue
    cols = [j for j in range(len(c))
            if c_val[j] and not (self_contrast and j == k0 + i)]
    pos = [j for j in cols if c_lab[j] == a_lab[i]]
    neg = [j for j in cols if c_lab[j] != a_lab[i]]
    if not pos:
      continue
    s = {j: a[i] @ c[j] / t for j in cols}
    shift = max(s.values())
    neg_sum = sum(np.exp(s[j] - shift) for j in neg)
    terms = [(s[p] - shift) - np.log(np.exp(s[p] - shift) + neg_sum)
             for p in pos]
    total += -(t / tb) * np.mean(terms)
    count += 1
  return total, count


def _random_case(rng, m, k, d, p_valid=0.7, scale=1.0, classes=2):
  a = rng.normal(size=(m, d)) * scale
  c = rng.normal(size=(k, d))
  a /= np.linalg.norm(a, axis=1, keepdims=True) / scale
  c /= np.linalg.norm(c, axis=1, keepdims=True)
  return (a.astype(np.float32), rng.integers(0, classes, m),
          rng.random(m) < p_valid, c.astype(np.float32),
          rng.integers(0, classes, k), rng.random(k) < 0.9)


def _jax_loss(case, t=T, tb=TB, self_contrast=False):
  a, al, av, c, cl, cv = case
  fn = jax.jit(lambda a, c: pixel_contrast_loss(
      Anchors(a, jnp.asarray(al), jnp.asarray(av)), c, jnp.asarray(cl),
      jnp.asarray(cv), temperature=t, base_temperature=tb,
      self_contrast=self_contrast))
  s, n = fn(a, c)
  return float(s), float(n)


@pytest.mark.parametrize('self_contrast', [False, True])
@pytest.mark.parametrize('t,tb', [(0.07, 0.07), (0.1, 0.07)])
def test_matches_numpy_reference(self_contrast, t, tb):
  rng = np.random.default_rng(0)
  for m, k, classes in [(12, 20, 2), (7, 30, 3)]:
    case = _random_case(rng, m, k, 8, classes=classes)
    got_s, got_n = _jax_loss(case, t, tb, self_contrast)
    ref_s, ref_n = reference_loss(*case, t, tb, self_contrast)
    assert got_n == ref_n
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-5, atol=1e-5)


def test_single_class_and_missing_positives():
  rng = np.random.default_rng(1)
  a, _, av, c, _, cv = _random_case(rng, 10, 12, 8)
  ones_a, ones_c = np.ones(10, int), np.ones(12, int)
  # Only class 1 everywhere: no negatives, every log-ratio is 0.
  case = (a, ones_a, av, c, ones_c, cv)
  s, n = _jax_loss(case)
  assert (s, n) == pytest.approx(reference_loss(*case, T, TB, False),
                                 abs=1e-6)
  assert n == av.sum() and s == pytest.approx(0.0, abs=1e-6)
  # Anchors of class 1 against a contrast set of class 0: no positive,
  # so no valid anchor.
  s, n = _jax_loss((a, ones_a, av, c, 0 * ones_c, cv))
  assert (s, n) == (0.0, 0.0)
  # Mixed anchors against a single-class contrast set.
  case = (a, rng.integers(0, 2, 10), av, c, ones_c, cv)
  got, ref = _jax_loss(case), reference_loss(*case, T, TB, False)
  assert got[1] == ref[1]
  np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-5)


def test_no_anchors_gives_exact_zero_and_zero_gradient():
  rng = np.random.default_rng(2)
  a, al, _, c, cl, cv = _random_case(rng, 9, 10, 8)
  none = np.zeros(9, bool)

  def mean_loss(a, c):
    s, n = pixel_contrast_loss(Anchors(a, al, none), c, cl, cv,
                               temperature=T, base_temperature=TB,
                               self_contrast=True)
    return s / jnp.maximum(n, 1.0)

  val, (ga, gc) = jax.jit(jax.value_and_grad(mean_loss, argnums=(0, 1)))(a, c)
  assert float(val) == 0.0
  assert not np.asarray(ga).any() and not np.asarray(gc).any()


def test_extreme_logits_stay_finite():
  rng = np.random.default_rng(3)
  case = _random_case(rng, 10, 15, 8, scale=30.0)   # |logit| up to ~430
  a, al, av, c, cl, cv = case
  got_s, got_n = _jax_loss(case)
  ref_s, ref_n = reference_loss(*case, T, TB, False)
  assert got_n == ref_n
  np.testing.assert_allclose(got_s, ref_s, rtol=1e-5)
  g = jax.jit(jax.grad(lambda a: pixel_contrast_loss(
      Anchors(a, al, av), c, cl, cv, temperature=T,
      base_temperature=TB)[0]))(a)
  assert np.isfinite(np.asarray(g)).all()


# ---------------------------------------------------------------- seg losses

def _seg_case(rng):
  logits = rng.normal(size=(2, 6, 5, 1)).astype(np.float32) * 3
  target = (rng.random((2, 6, 5, 1)) < 0.4).astype(np.float32)
  weight = np.ones((2, 6, 5, 1), np.float32)
  weight[:, 4:] = 0.0
  return logits, target, weight


def _np_seg(kind, x, t, w):
  x = np.float64(x)
  p = 1 / (1 + np.exp(-x))
  if kind == 'mse':
    return np.sum(w * (p - t) ** 2) / np.sum(w)
  if kind == 'bce':
    return np.sum(w * -(t * np.log(p) + (1 - t) * np.log(1 - p))) / np.sum(w)
  dice = [1 - (2 * np.sum(w[i] * p[i] * t[i]) + 1)
          / (np.sum(w[i] * p[i]) + np.sum(w[i] * t[i]) + 1)
          for i in range(len(x))]
  if kind == 'dice':
    return np.mean(dice)
  return _np_seg('bce', x, t, w) + np.mean(dice)


@pytest.mark.parametrize('kind', ['mse', 'bce', 'dice', 'bce_dice'])
def test_segmentation_losses(kind):
  rng = np.random.default_rng(4)
  x, t, w = _seg_case(rng)
  got = float(jax.jit(segmentation_loss, static_argnums=3)(x, t, w, kind))
  np.testing.assert_allclose(got, _np_seg(kind, x, t, w), rtol=1e-5)
  # Padding never counts.
  x2 = np.where(w > 0, x, 50.0).astype(np.float32)
  t2 = np.where(w > 0, t, 0.0).astype(np.float32)
  np.testing.assert_allclose(float(segmentation_loss(x2, t2, w, kind)), got,
                             rtol=1e-6)


def test_bce_is_stable_and_bad_kind_named():
  x = np.array([[-200.0, -30.0, 0.0, 30.0, 200.0]], np.float32)[..., None, None]
  t = np.array([[1.0, 1.0, 0.0, 0.0, 0.0]], np.float32)[..., None, None]
  w = np.ones_like(x)
  val, g = jax.jit(jax.value_and_grad(segmentation_loss),
                   static_argnums=3)(x, t, w, 'bce')
  assert np.isfinite(float(val)) and np.isfinite(np.asarray(g)).all()
  np.testing.assert_allclose(float(val), (200 + 30 + np.log(2) + 30 + 200) / 5,
                             rtol=1e-5)
  assert float(segmentation_loss(x, t, 0 * w, 'mse')) == 0.0
  with pytest.raises(ValueError, match='seg_loss'):
    segmentation_loss(x, t, w, 'focal')


# ---------------------------------------------------------------- config

def test_config_defaults_and_errors():
  cfg = config_lib.contrast_config()
  assert (cfg.weight, cfg.thin_weight, cfg.temperature, cfg.base_temperature,
          cfg.max_samples, cfg.max_views, cfg.min_pixels, cfg.queue_len,
          cfg.pixels_per_image) == (0.05, 0.1, 0.07, 0.07, 1024, 200, 200,
                                    400, 10)
  assert cfg.use_memory and not cfg.freeze_memory_bank and not cfg.in_batch
  assert cfg.seg_loss == 'mse' and tuple(cfg.enqueue_classes) == (0, 1)
  check_contrast_config(cfg)
  assert float(combine_losses(1.0, 2.0, 3.0, cfg)) == pytest.approx(
      1.0 + 0.05 * (2.0 + 0.1 * 3.0))
  for key, value, match in [('seg_loss', 'l1', 'contrast.seg_loss'),
                            ('enqueue_classes', (2,), 'enqueue_classes'),
                            ('temperature', 0.0, 'temperature'),
                            ('use_memory', False, 'use_memory')]:
    bad = config_lib.contrast_config()
    bad[key] = value
    with pytest.raises(ValueError, match=match):
      check_contrast_config(bad)


# ---------------------------------------------------------------- branch

N, H, W, D = 2, 16, 16, 8


def _branch_inputs(seed):
  rng = np.random.default_rng(seed)
  embed = l2_normalize(jnp.asarray(rng.normal(size=(N, H, W, D)),
                                   jnp.float32))
  label = (rng.random((N, H, W, 1)) < 0.35).astype(np.float32)
  prob = np.clip(0.5 * label + 0.6 * rng.random(label.shape), 0, 1)
  valid = np.ones((N, H, W, 1), np.float32)
  valid[:, 13:] = 0.0
  return embed, prob.astype(np.float32), label * valid, valid


def _small_cfg(**kw):
  cfg = config_lib.contrast_config()
  cfg.max_samples, cfg.max_views, cfg.min_pixels, cfg.queue_len = 64, 24, 20, 7
  for k, v in kw.items():
    cfg[k] = v
  return cfg


@pytest.mark.parametrize('in_batch,use_memory', [(False, True), (True, False)])
def test_branch_loss_finite_and_grads_only_through_anchors(in_batch,
                                                           use_memory):
  embed, prob, label, valid = _branch_inputs(0)
  cfg = _small_cfg(in_batch=in_batch, use_memory=use_memory)
  bank = init_memory_bank(jax.random.PRNGKey(0), num_classes=2,
                          queue_len=cfg.queue_len, dim=D)
  keys = jax.random.split(jax.random.PRNGKey(1), N)

  @jax.jit
  def loss_fn(e, pq, sq):
    b = bank.replace(pixel_queue=pq, segment_queue=sq)
    s, n, anchors = contrast_branch_loss(e, prob, label, valid, b, keys, cfg)
    return s / jnp.maximum(n, 1.0), (n, anchors)

  (val, (n, anchors)), grads = jax.value_and_grad(
      loss_fn, argnums=(0, 1, 2), has_aux=True)(
          embed, bank.pixel_queue, bank.segment_queue)
  assert np.isfinite(float(val)) and float(val) > 0 and float(n) > 0
  assert anchors.feat.shape[0] == cfg.max_samples
  assert int(np.sum(anchors.valid)) == int(n)
  g_embed, g_pq, g_sq = (np.asarray(g) for g in grads)
  assert not g_pq.any() and not g_sq.any()       # bank is stop-gradient
  # Nonzero gradient exactly at the sampled pixels (found by their vectors).
  flat = np.asarray(embed).reshape(-1, D)
  feats = np.asarray(anchors.feat)[np.asarray(anchors.valid)]
  dist = np.abs(flat[None, :, :] - feats[:, None, :]).sum(-1)   # [A, N*H*W]
  sampled = np.argmin(dist, axis=1)
  assert dist[np.arange(len(feats)), sampled].max() < 1e-6
  assert np.asarray(valid).reshape(-1)[sampled].all()
  touched = np.flatnonzero(np.abs(g_embed).reshape(-1, D).sum(-1))
  np.testing.assert_array_equal(touched, np.unique(sampled))
  assert len(np.unique(sampled)) == len(sampled)


def test_branch_loss_without_anchors_is_exactly_zero():
  embed, prob, label, valid = _branch_inputs(1)
  cfg = _small_cfg(min_pixels=10_000)            # no class is kept
  bank = init_memory_bank(jax.random.PRNGKey(0), num_classes=2,
                          queue_len=cfg.queue_len, dim=D)
  keys = jax.random.split(jax.random.PRNGKey(1), N)

  def mean_loss(e):
    s, n, _ = contrast_branch_loss(e, prob, label, valid, bank, keys, cfg)
    return s / jnp.maximum(n, 1.0)

  val, g = jax.jit(jax.value_and_grad(mean_loss))(embed)
  assert float(val) == 0.0 and not np.asarray(g).any()
  # All-padding batch too.
  val, g = jax.jit(jax.value_and_grad(
      lambda e: contrast_branch_loss(e, prob, label, 0 * valid, bank, keys,
                                     _small_cfg())[0]))(embed)
  assert float(val) == 0.0 and not np.asarray(g).any()


def test_branch_loss_with_authors_bank_setting():
  """enqueue_classes=(1,): class-0 contrast rows are zero vectors."""
  embed, prob, label, valid = _branch_inputs(2)
  bank = init_memory_bank(jax.random.PRNGKey(0), num_classes=2, queue_len=7,
                          dim=D)
  keys = jax.random.split(jax.random.PRNGKey(1), N)
  cfg_a = _small_cfg(enqueue_classes=(1,), freeze_memory_bank=True)
  cfg_b = _small_cfg()
  sa, na, _ = jax.jit(lambda e: contrast_branch_loss(
      e, prob, label, valid, bank, keys, cfg_a))(embed)
  sb, nb, _ = jax.jit(lambda e: contrast_branch_loss(
      e, prob, label, valid, bank, keys, cfg_b))(embed)
  assert float(na) == float(nb) > 0 and np.isfinite(float(sa))
  assert float(sa) != pytest.approx(float(sb))
  with pytest.raises(ValueError, match='embedding dim'):
    contrast_branch_loss(embed[..., :4], prob, label, valid, bank, keys, cfg_b)


@pytest.mark.parametrize('in_batch,use_memory', [(False, True), (True, True)])
def test_branch_loss_over_devices_equals_one_device(in_batch, use_memory):
  # The train step's form (axis_name, one shard of the batch per device):
  # psummed sums and the gradient equal the one-call value on the whole batch.
  from jax.sharding import Mesh, PartitionSpec as P
  n_dev = 4
  rng = np.random.default_rng(7)
  embed = l2_normalize(jnp.asarray(rng.normal(size=(n_dev, H, W, D)), jnp.float32))
  prob = jnp.asarray(rng.uniform(size=(n_dev, H, W)), jnp.float32)
  label = jnp.asarray(rng.uniform(size=(n_dev, H, W)) < 0.3, jnp.float32)
  valid = jnp.ones((n_dev, H, W), jnp.float32)
  cfg = _small_cfg(in_batch=in_batch, use_memory=use_memory)
  bank = init_memory_bank(jax.random.PRNGKey(0), num_classes=2,
                          queue_len=cfg.queue_len, dim=D)
  keys = jax.random.split(jax.random.PRNGKey(1), n_dev)

  def one(e):
    s, n, _ = contrast_branch_loss(e, prob, label, valid, bank, keys, cfg)
    return s / n, n

  mesh = Mesh(np.array(jax.devices()[:n_dev]), ('d',))

  def per_device(e, p, l, v, k):
    s, n, _ = contrast_branch_loss(e, p, l, v, bank, k, cfg, axis_name='d')
    n = jax.lax.psum(n, 'd')
    return jax.lax.psum(s, 'd') / n, n

  spec = P('d')
  mapped = jax.shard_map(per_device, mesh=mesh, in_specs=(spec,) * 5,
                         out_specs=(P(), P()), check_vma=False)
  many = lambda e: mapped(e, prob, label, valid, keys)
  (v1, n1), g1 = jax.value_and_grad(one, has_aux=True)(embed)
  (v4, n4), g4 = jax.jit(jax.value_and_grad(many, has_aux=True))(embed)
  assert float(n1) == float(n4) > 0
  np.testing.assert_allclose(float(v4), float(v1), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(g4), np.asarray(g1), atol=1e-6)
