"""Input pipeline: augmentation alignment, determinism, resume, sharding, eval padding."""
import math

import numpy as np
import pytest

from cosnet_jax.data import augment, load_image, preprocess, source
from cosnet_jax.config import data_config as default_data_config
from cosnet_jax.data.pipeline import make_eval_batches, make_train_iterator


@pytest.fixture(scope='module')
def syn_cfg(tmp_path_factory):
  cfg = default_data_config()
  cfg.cache_dir = str(tmp_path_factory.mktemp('tfds'))
  cfg.synthetic.update(num_train=10, num_val=5, num_test=2, size=80, seed=1)
  cfg.crop_size = 48
  cfg.pad_multiple = 16
  return cfg


def _pattern(h=40, w=40):
  """An asymmetric 'F' whose image intensity equals its label."""
  m = np.zeros((h, w), np.uint8)
  m[5:35, 8:12] = 1
  m[5:9, 8:30] = 1
  m[18:22, 8:24] = 1
  return m * np.uint8(255), m


def _params(**kw):
  base = dict(top=0, left=0, angle=0.0, flip_y=False, flip_x=False, contrast=1.0, brightness=0.0)
  base.update(kw)
  return augment.AugParams(**base)


def test_warp_flips_and_rotation_keep_image_and_mask_aligned():
  img, m = _pattern()
  full = (40, 40)
  for kw, ref in ((dict(flip_x=True), lambda a: a[:, ::-1]), (dict(flip_y=True), lambda a: a[::-1]),
                  (dict(angle=math.pi / 2), lambda a: np.rot90(a, -1)),
                  (dict(angle=math.pi / 2, flip_x=True), lambda a: np.rot90(a, -1)[:, ::-1])):
    out_img, out_lab, valid = augment.warp(img, m, _params(**kw), full, full)
    np.testing.assert_array_equal(out_lab, ref(m))
    np.testing.assert_allclose(out_img, ref(m).astype(np.float32), atol=1e-4)
    assert valid.min() == 1
  # Crop + padding: crop window at (top, left), padded bottom / right to out_hw.
  out_img, out_lab, valid = augment.warp(img, m, _params(top=3, left=5), (20, 24), (32, 32))
  np.testing.assert_array_equal(out_lab[:20, :24], m[3:23, 5:29])
  assert valid[:20, :24].min() == 1 and valid[20:].max() == 0 and valid[:, 24:].max() == 0
  assert out_lab[20:].max() == 0 and out_img[:, 24:].max() == 0


def test_random_augmentation_alignment_statistics():
  img, m = _pattern(64, 64)
  cfg = default_data_config()
  cfg.crop_size, cfg.rotation_deg, cfg.intensity_jitter = 48, 25.0, 0.0
  rng = np.random.default_rng(0)
  vessels = np.flatnonzero(m)
  for _ in range(20):
    out_img, out_lab, valid = augment.augment(img, m, vessels, rng, cfg, (48, 48))
    v = valid > 0
    # Bilinear image vs nearest label: agree except on the one-pixel edge band.
    agree = ((out_img > 0.5) == (out_lab > 0))[v].mean()
    assert agree > 0.96
    assert out_lab[~v].max(initial=0) == 0 and out_img[~v].max(initial=0) == 0


def test_crops_favour_vessels():
  m = np.zeros((200, 200), np.uint8)
  m[10:14, 10:14] = 1  # one small vessel blob in a corner
  img = m * np.uint8(255)
  cfg = default_data_config()
  cfg.crop_size, cfg.rotation_deg, cfg.flip = 32, 0.0, False
  hits = {}
  for prob in (0.0, 1.0):
    cfg.crop_vessel_prob = prob
    rng = np.random.default_rng(0)
    hits[prob] = np.mean([augment.augment(img, m, np.flatnonzero(m), rng, cfg, (32, 32))[1].max() > 0
                          for _ in range(100)])
  assert hits[1.0] == 1.0 and hits[0.0] < 0.2


def test_train_batches_shapes_values(syn_cfg):
  it = make_train_iterator(syn_cfg, global_batch_size=4, seed=0)
  b = next(it)
  it.close()
  assert set(b) == {'image', 'mask', 'thick', 'thin', 'valid'}
  for v in b.values():
    assert v.shape == (4, 48, 48, 1) and v.dtype == np.float32
  for k in ('mask', 'thick', 'thin', 'valid'):
    assert set(np.unique(b[k]).tolist()) <= {0.0, 1.0}
  assert b['image'].min() >= 0 and b['image'].max() <= 1
  np.testing.assert_array_equal(b['mask'], np.maximum(b['thick'], b['thin']))
  assert b['mask'][b['valid'] == 0].max(initial=0) == 0


def test_deterministic_and_resumable(syn_cfg):
  def run(start, n, seed=0, **cfg_over):
    cfg = syn_cfg.copy_and_resolve_references()
    cfg.update(cfg_over)
    it = make_train_iterator(cfg, global_batch_size=4, seed=seed, start_step=start)
    out = [next(it) for _ in range(n)]
    it.close()
    return out

  full = run(0, 6)  # 6 x 4 = 24 > 10 examples: crosses epochs
  resumed = run(3, 3, prefetch=0, num_workers=1)
  for a, b in zip(full[3:], resumed):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  again = run(0, 2)
  np.testing.assert_array_equal(full[1]['image'], again[1]['image'])
  other = run(0, 1, seed=1)
  assert not np.array_equal(full[0]['image'], other[0]['image'])


def test_each_epoch_visits_every_example_once(syn_cfg):
  it = make_train_iterator(syn_cfg, global_batch_size=4, seed=3, process_index=0,
                           process_count=1)
  idx = np.concatenate([it.example_indices(k) for k in range(5)])  # 20 = 2 epochs of 10
  it.close()
  assert sorted(idx[:10]) == list(range(10)) and sorted(idx[10:]) == list(range(10))
  assert not np.array_equal(idx[:10], idx[10:])  # reshuffled


def test_process_shards_partition_the_split(syn_cfg):
  count = 3
  ids = []
  for p in range(count):
    ids += source.load_split(syn_cfg, 'train', p, count).ids
  assert sorted(ids) == sorted(source.load_split(syn_cfg, 'train').ids)
  assert len(set(ids)) == 10
  # Eval: every process yields the same number of batches; real ids once in total.
  batches = [list(make_eval_batches(syn_cfg, 'val', batch_size=12, process_index=p,
                                    process_count=count)) for p in range(count)]
  assert len({len(b) for b in batches}) == 1
  seen = [i for bs in batches for b in bs for i in b['id'].tolist() if i]
  assert sorted(seen) == [f'synthetic_val_{i:05d}' for i in range(5)]
  # Training: each process uses its own shard only.
  for p in range(count):
    it = make_train_iterator(syn_cfg, global_batch_size=12, seed=0, process_index=p,
                             process_count=count)
    assert next(it)['image'].shape[0] == 4
    it.close()


def test_rows_of_the_global_batch_equal_the_full_batch(syn_cfg):
  # The train loop's multi-process form: every process builds only its rows
  # of the one global stream; together they must be the full batch, value for
  # value (same examples, same augmentation draws), also after a resume.
  full = make_train_iterator(syn_cfg, global_batch_size=8, seed=5, process_index=0,
                             process_count=1)
  want = [full.batch(k) for k in (0, 3)]
  full.close()
  for lo, hi in ((0, 3), (3, 5), (5, 8)):
    part = make_train_iterator(syn_cfg, global_batch_size=8, seed=5, process_index=0,
                               process_count=1, rows=(lo, hi), start_step=3)
    got, first = next(part), part.batch(0)
    part.close()
    for key in ('image', 'thick', 'thin', 'valid'):
      np.testing.assert_array_equal(got[key], want[1][key][lo:hi])
    np.testing.assert_array_equal(first['image'], want[0]['image'][lo:hi])
  with pytest.raises(ValueError, match='rows'):
    make_train_iterator(syn_cfg, global_batch_size=8, seed=5, process_index=0,
                        process_count=1, rows=(4, 9))


def test_batch_size_must_split_over_devices(syn_cfg, monkeypatch):
  import jax
  monkeypatch.setattr(jax, 'device_count', lambda: 4)
  with pytest.raises(ValueError, match=r'6 must be a positive multiple.*device_count\(\) = 4'):
    make_train_iterator(syn_cfg, global_batch_size=6, seed=0)
  with pytest.raises(ValueError, match='device_count'):
    make_eval_batches(syn_cfg, 'val', batch_size=2)


def test_eval_batches_pad_and_dummies(syn_cfg):
  batches = list(make_eval_batches(syn_cfg, 'val', batch_size=4))
  assert len(batches) == 2
  last = batches[-1]
  assert last['image'].shape == (4, 80, 80, 1)  # 80 is a multiple of 16
  assert last['id'].tolist()[1:] == ['', '', ''] and last['valid'][1:].max() == 0
  assert last['height'].tolist() == [80, 0, 0, 0]
  cfg = syn_cfg.copy_and_resolve_references()
  cfg.pad_multiple = 32
  b = next(make_eval_batches(cfg, 'val', batch_size=4))
  assert b['image'].shape == (4, 96, 96, 1)
  assert b['valid'][:, :80, :80].min() == 1 and b['valid'][:, 80:].max() == 0
  assert b['image'][:, 80:].max() == 0 and b['mask'][:, :, 80:].max() == 0


def test_eval_image_equals_preprocess_of_file(tmp_path, shared_data):
  import os
  root = tmp_path / 'flat'
  for kind in ('image', 'label'):
    (root / 'test' / kind).mkdir(parents=True)
    os.symlink(shared_data / 'OCTA500_3M' / 'test' / kind / '10451.bmp',
               root / 'test' / kind / '10451.bmp')
  cfg = default_data_config()
  cfg.update(name='octa_folder', root=str(root), cache_dir=str(tmp_path / "cache"))
  b = next(make_eval_batches(cfg, 'test', batch_size=4))
  assert b['id'][0] == '10451' and b['image'].shape[1:3] == (320, 320)
  ref = preprocess(load_image(shared_data / 'OCTA500_3M' / 'test' / 'image' / '10451.bmp'), cfg)
  np.testing.assert_array_equal(b['image'][0, :304, :304, 0], ref)
