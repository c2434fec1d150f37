"""Every dataset layout is read from its files (no TFDS), checked, cached and read back;
the TFDS reader gives the same arrays; the cache follows the files."""
import os
from pathlib import Path

import numpy as np
import pytest

from cosnet_jax.data import datasets, layouts, source, testing
from cosnet_jax.config import data_config as default_data_config
from cosnet_jax.data.image_io import read_image_u8, read_label
from cosnet_jax.data.errors import DataError
from PIL import Image


def _cfg(tmp, name, root=''):
  cfg = default_data_config()
  cfg.name, cfg.root = name, str(root)
  cfg.cache_dir, cfg.tfds_dir = str(Path(tmp) / 'cache'), str(Path(tmp) / 'tfds')
  cfg.holdout_fraction = 0.0   # the splits as the files give them (holdout: test_data_folder.py)
  return cfg


def _read_all(cfg, split):
  """{id: {'image', 'mask', 'thick', 'thin': uint8 [H, W, 1] (labels 0 / 255)}}."""
  prep = source.prepared(cfg)
  out = {}
  for name, pos in source.split_members(cfg, split):
    raw = prep.splits[name]
    lab = raw.labels[pos]
    out[raw.ids[pos]] = {'image': raw.images[pos][..., None],
                         **{k: (((lab >> b) & 1) * 255).astype(np.uint8)[..., None]
                            for b, k in enumerate(('mask', 'thick', 'thin'))}}
  return out


def _check_example(ex):
  for k in ('image', 'mask', 'thick', 'thin'):
    assert ex[k].dtype == np.uint8 and ex[k].ndim == 3 and ex[k].shape[-1] == 1
    assert ex[k].shape == ex['image'].shape
  for k in ('mask', 'thick', 'thin'):
    assert set(np.unique(ex[k]).tolist()) <= {0, 255}


def test_synthetic_prepares_reads_back_and_is_deterministic(tmp_path):
  cfg = _cfg(tmp_path, 'synthetic_octa')
  cfg.synthetic.update(num_train=3, num_val=2, num_test=1, size=64, seed=5)
  info = source.dataset_info(cfg)
  assert info['num_examples'] == {'train': 3, 'val': 2, 'test': 1}
  assert info['image_size'] == (64, 64) and info['has_thick_thin']
  assert info['train_size'] == (64, 64) and info['eval_size'] == (64, 64)
  train = _read_all(cfg, 'train')
  assert sorted(train) == [f'synthetic_train_{i:05d}' for i in range(3)]
  from cosnet_jax.data import synthetic
  ref = synthetic.generate_octa(synthetic.example_rng(5, 0, 1), 64)
  ex = train['synthetic_train_00001']
  _check_example(ex)
  np.testing.assert_array_equal(ex['image'][..., 0], ref['image'])
  np.testing.assert_array_equal(ex['thick'][..., 0] // 255, ref['thick'])
  np.testing.assert_array_equal(ex['thin'][..., 0] // 255, ref['thin'])
  # Another seed is another config (prepared separately, not reused).
  cfg.synthetic.seed = 6
  other = _read_all(cfg, 'train')['synthetic_train_00001']
  assert not np.array_equal(other['image'], ex['image'])


def test_rose1_configs_from_fixture(tmp_path):
  root = testing.write_rose1(str(tmp_path / 'data'), n_train=10, n_test=3, size=40)
  svc = _cfg(tmp_path / 'tfds', 'rose1/svc', root)
  info = source.dataset_info(svc)
  # val = every 10th official-train image (sorted ids): 10 -> 9 train + 1 val.
  assert info['num_examples'] == {'train': 9, 'val': 1, 'test': 3}
  assert info['has_thick_thin'] and info['image_size'] == (40, 40)
  assert info['eval_size'] == (64, 64)
  val = _read_all(svc, 'val')
  assert list(val) == ['10']
  train = _read_all(svc, 'train')
  assert sorted(train, key=layouts.natural_key) == [f'{i:02d}' for i in range(1, 10)]
  ex = train['03']
  _check_example(ex)
  base = os.path.join(root, 'ROSE-1', 'SVC', 'train')
  np.testing.assert_array_equal(ex['image'][..., 0], read_image_u8(os.path.join(base, 'img', '03.tif')))
  np.testing.assert_array_equal(ex['mask'][..., 0] // 255, read_label(os.path.join(base, 'gt', '03.tif')))
  np.testing.assert_array_equal(ex['thick'][..., 0] // 255,
                                read_label(os.path.join(base, 'thick_gt', '03.tif')))
  np.testing.assert_array_equal(ex['thin'][..., 0] // 255,
                                read_label(os.path.join(base, 'thin_gt', '03.tif')))
  # DVC: one label -> thick = thin = mask.
  dvc = _cfg(tmp_path / 'tfds', 'rose1/dvc', root)
  assert not source.dataset_info(dvc)['has_thick_thin']
  for ex in _read_all(dvc, 'test').values():
    _check_example(ex)
    np.testing.assert_array_equal(ex['thick'], ex['mask'])
    np.testing.assert_array_equal(ex['thin'], ex['mask'])
  # SVC_DVC: png images, tif gt, thick / thin from SVC.
  both = _cfg(tmp_path / 'tfds', 'rose1/svc_dvc', root)
  ex = _read_all(both, 'test')['02']
  b = os.path.join(root, 'ROSE-1')
  np.testing.assert_array_equal(ex['image'][..., 0],
                                read_image_u8(os.path.join(b, 'SVC_DVC', 'test', 'img', '02.png')))
  np.testing.assert_array_equal(ex['thin'][..., 0] // 255,
                                read_label(os.path.join(b, 'SVC', 'test', 'thin_gt', '02.tif')))


def test_rose2_from_fixture(tmp_path):
  root = testing.write_rose2(str(tmp_path / 'data'), n_train=20, n_test=4, size=48)
  cfg = _cfg(tmp_path / 'tfds', 'rose2', root)
  info = source.dataset_info(cfg)
  assert info['num_examples'] == {'train': 18, 'val': 2, 'test': 4}
  assert not info['has_thick_thin']
  val = _read_all(cfg, 'val')
  assert sorted(val) == ['10_OD_SVP', '20_OD_SVP']
  test = _read_all(cfg, 'test')
  assert not set(val) & set(_read_all(cfg, 'train'))
  for ex in test.values():
    _check_example(ex)
    np.testing.assert_array_equal(ex['thick'], ex['mask'])


def test_octa_folder_with_thick_thin(tmp_path):
  root = testing.write_flat(str(tmp_path / 'data'), splits=(('train', 3), ('eval', 2)),
                            size=40, thick_thin=True)
  cfg = _cfg(tmp_path / 'tfds', 'octa_folder', root)
  info = source.dataset_info(cfg)
  assert info['num_examples'] == {'train': 3, 'eval': 2} and info['has_thick_thin']
  ex = _read_all(cfg, 'eval')['eval1']
  _check_example(ex)
  np.testing.assert_array_equal(
      ex['thick'][..., 0] // 255, read_label(os.path.join(root, 'eval', 'thick', 'eval1.png')))


def test_root_hash_separates_roots(tmp_path):
  a = testing.write_flat(str(tmp_path / 'a' / 'data'), splits=(('train', 2),), size=32, seed=1)
  b = testing.write_flat(str(tmp_path / 'b' / 'data'), splits=(('train', 2),), size=32, seed=2)
  ca = _cfg(tmp_path / 'tfds', 'octa_folder', a)
  cb = _cfg(tmp_path / 'tfds', 'octa_folder', b)
  ea, eb = _read_all(ca, 'train')['train0'], _read_all(cb, 'train')['train0']
  assert not np.array_equal(ea['image'], eb['image'])
  assert layouts.fingerprint(ca, layouts.scan(ca)) != layouts.fingerprint(cb, layouts.scan(cb))


def test_rossa_reads_real_files(tmp_path, shared_data):
  # A small copy of the real ROSSA layout (symlinks) keeps this test fast.
  root = tmp_path / 'ROSSA'
  for split, names in (('train_manual', ['1', '2', '3']), ('val', ['101', '102'])):
    for kind in ('image', 'label'):
      (root / split / kind).mkdir(parents=True)
      for n in names:
        os.symlink(shared_data / 'ROSSA' / split / kind / f'{n}.png', root / split / kind / f'{n}.png')
  cfg = _cfg(tmp_path / 'tfds', 'rossa', root)
  info = source.dataset_info(cfg)
  assert info['num_examples'] == {'train_manual': 3, 'val': 2}
  assert info['image_size'] == (320, 320) and info['eval_size'] == (320, 320)
  ex = _read_all(cfg, 'val')['102']
  _check_example(ex)
  np.testing.assert_array_equal(ex['image'][..., 0],
                                read_image_u8(shared_data / 'ROSSA' / 'val' / 'image' / '102.png'))
  # The config default train split 'train' does not exist for ROSSA: clear error.
  with pytest.raises(ValueError, match=r"Split 'train' .*not in the dataset.*train_manual"):
    source.split_num_examples(cfg, 'train')
  assert source.split_num_examples(cfg, 'train_manual+val') == 5


def test_octa500_official_and_flat_layouts_agree(tmp_path, shared_data):
  official = _cfg(tmp_path, 'octa500/3m_ilm_opl_largevessel', shared_data / 'OCTA-500-official-sample')
  info = source.dataset_info(official)
  assert info['num_examples'] == {'train': 5}  # sample subjects 10301-10305 are all train
  flat = _cfg(tmp_path, 'octa500/3m_ilm_opl_largevessel', shared_data / 'OCTA500_3M')
  info_flat = source.dataset_info(flat)
  assert info_flat['num_examples'] == {'train': 140, 'val': 10, 'test': 50}
  assert info_flat['image_size'] == (304, 304) and not info_flat['has_thick_thin']
  a = _read_all(official, 'train')
  b = _read_all(flat, 'train')
  assert sorted(a) == ['10301', '10302', '10303', '10304', '10305']
  for sid in a:
    for k in ('image', 'mask', 'thick', 'thin'):
      np.testing.assert_array_equal(a[sid][k], b[sid][k])
  # Flat split folders hold the official subject ranges.
  ids = {s: sorted(int(i) for i in _read_all(flat, s)) for s in ('val', 'test')}
  assert ids['val'] == list(range(10441, 10451)) and ids['test'] == list(range(10451, 10501))


def test_octa500_other_configs_from_official_sample(tmp_path, shared_data):
  cfg = _cfg(tmp_path, 'octa500/6m_oct_full_capillary', shared_data / 'OCTA-500-official-sample')
  info = source.dataset_info(cfg)
  assert info['num_examples'] == {'train': 5} and info['image_size'] == (400, 400)
  assert info['eval_size'] == (416, 416)
  ex = _read_all(cfg, 'train')['10003']
  base = shared_data / 'OCTA-500-official-sample' / 'OCTA_6M'
  np.testing.assert_array_equal(ex['image'][..., 0],
                                read_image_u8(base / 'ProjectionMaps' / 'OCT(FULL)' / '10003.bmp'))
  np.testing.assert_array_equal(ex['mask'][..., 0] // 255,
                                read_label(base / 'GT_Capillary' / '10003.bmp'))


def test_octa500_split_ranges_and_config_names():
  from cosnet_jax.data.builders import Octa500
  names = {c.name for c in Octa500.BUILDER_CONFIGS}
  assert len(names) == 60
  assert {'3m_ilm_opl_largevessel', '6m_opl_bm_faz', '3m_full_artery', '6m_oct_ilm_opl_vein',
          '3m_oct_opl_bm_capillary'} <= names
  sizes = {fov: {s: hi - lo + 1 for s, (lo, hi) in r.items()}
           for fov, r in datasets.OCTA500_SPLITS.items()}
  assert sizes == {'6m': {'train': 180, 'val': 20, 'test': 100},
                   '3m': {'train': 140, 'val': 10, 'test': 50}}


def test_split_expressions_count_and_load_their_examples(tmp_path):
  cfg = _cfg(tmp_path, 'synthetic_octa')
  cfg.synthetic.update(num_train=3, num_val=2, num_test=1, size=64, seed=5)
  assert source.split_num_examples(cfg, 'train') == 3
  assert source.split_num_examples(cfg, 'train[:2]') == 2
  assert source.split_num_examples(cfg, 'train+val') == 5
  assert source.split_num_examples(cfg, 'extra', missing_ok=True) == 0
  with pytest.raises(DataError, match="'extra'"):
    source.split_num_examples(cfg, 'extra')
  # The first 2 examples in the dataset's order, each once.
  part = source.load_split(cfg, 'train[:2]')
  whole = source.load_split(cfg, 'train')
  assert part.ids == whole.ids[:2] and len(set(part.ids)) == 2


def test_editing_a_file_refreshes_the_cache(tmp_path):
  root = testing.write_flat(str(tmp_path / 'data'), splits=(('train', 3),), size=32)
  cfg = _cfg(tmp_path, 'octa_folder', root)
  before = _read_all(cfg, 'train')['train1']['mask'][..., 0]
  assert before.any()
  cache = sorted(os.listdir(tmp_path / 'cache'))
  # A new process (the in-memory copy forgotten) with the label edited:
  # every vessel pixel set to 0.
  source.clear_caches()
  label = os.path.join(root, 'train', 'label', 'train1.png')
  Image.fromarray(np.zeros_like(before)).save(label)
  os.utime(label, ns=(os.stat(label).st_atime_ns, os.stat(label).st_mtime_ns + 10**9))
  after = _read_all(cfg, 'train')['train1']['mask'][..., 0]
  assert not after.any()
  # The entry of the old contents was replaced, not kept beside the new one.
  new_cache = sorted(os.listdir(tmp_path / 'cache'))
  assert len([c for c in new_cache if c.endswith('.npz')]) == 1 and new_cache != cache
  # Adding a file is seen too.
  source.clear_caches()
  Image.fromarray(np.full((32, 32), 9, np.uint8)).save(os.path.join(root, 'train', 'image', 'x.png'))
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(os.path.join(root, 'train', 'label', 'x.png'))
  assert 'x' in _read_all(cfg, 'train')


def test_tfds_reader_gives_the_files_readers_arrays(tmp_path):
  pytest.importorskip('tensorflow_datasets')
  root = testing.write_flat(str(tmp_path / 'data'), splits=(('train', 3), ('val', 2)), size=40,
                            thick_thin=True)
  files = _cfg(tmp_path / 'f', 'octa_folder', root)
  tfds_cfg = _cfg(tmp_path / 't', 'octa_folder', root)
  tfds_cfg.reader = 'tfds'
  for split in ('train', 'val'):
    a, b = _read_all(files, split), _read_all(tfds_cfg, split)
    assert sorted(a) == sorted(b)
    for k in a:
      for field in ('image', 'mask', 'thick', 'thin'):
        np.testing.assert_array_equal(a[k][field], b[k][field])
  assert source.prepared(tfds_cfg).has_thick_thin
