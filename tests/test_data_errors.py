"""Bad input gets a clear error naming the folder / file; every problem at once."""
import os

import numpy as np
import pytest
from PIL import Image

from cosnet_jax.data import (DataError, DataIntegrityError, DatasetNotFoundError,
                             source, testing)
from cosnet_jax.config import data_config as default_data_config


def _cfg(tmp_path, name, root):
  cfg = default_data_config()
  cfg.update(name=name, root=str(root), cache_dir=str(tmp_path / "cache"),
             holdout_fraction=0.0)
  return cfg


def _flat(tmp_path, **kw):
  return testing.write_flat(str(tmp_path / 'data'), splits=(('train', 3),), size=32, **kw)


def test_missing_and_empty_root(tmp_path):
  missing = tmp_path / 'nope'
  with pytest.raises(DatasetNotFoundError, match=r'nope.*does not exist[\s\S]*imed.nimte.ac.cn'):
    source.dataset_info(_cfg(tmp_path, 'rose1/svc', missing))
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(DatasetNotFoundError, match=r'empty.*is empty[\s\S]*ieee-dataport'):
    source.dataset_info(_cfg(tmp_path, 'octa500/3m_ilm_opl_largevessel', empty))
  with pytest.raises(DatasetNotFoundError, match=r'config.data.root is empty'):
    source.dataset_info(_cfg(tmp_path, 'rossa', ''))


def test_wrong_layout_names_expected_folder(tmp_path):
  root = testing.write_rose1(str(tmp_path / 'data'), n_train=2, n_test=1, size=32)
  import shutil
  shutil.rmtree(os.path.join(root, 'ROSE-1', 'DVC', 'test', 'gt'))
  with pytest.raises(DatasetNotFoundError, match=r'DVC/test/gt'):
    source.dataset_info(_cfg(tmp_path, 'rose1/dvc', root))
  other = tmp_path / 'other'
  (other / 'stuff').mkdir(parents=True)
  with pytest.raises(DatasetNotFoundError, match=r'ROSE-2'):
    source.dataset_info(_cfg(tmp_path, 'rose2', other))


def test_unpaired_files(tmp_path):
  root = _flat(tmp_path)
  os.remove(os.path.join(root, 'train', 'label', 'train1.png'))
  with pytest.raises(DataIntegrityError, match=r'image without mask label: .*train/image/train1\.png'):
    source.dataset_info(_cfg(tmp_path, 'octa_folder', root))
  os.remove(os.path.join(root, 'train', 'image', 'train1.png'))
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(
      os.path.join(root, 'train', 'label', 'orphan.png'))
  with pytest.raises(DataIntegrityError, match=r'label without image: .*label/orphan\.png'):
    source.dataset_info(_cfg(tmp_path, 'octa_folder', root))
  os.remove(os.path.join(root, 'train', 'label', 'orphan.png'))
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(
      os.path.join(root, 'train', 'image', 'train0.bmp'))
  with pytest.raises(DataIntegrityError, match=r'same id .train0.'):
    source.dataset_info(_cfg(tmp_path, 'octa_folder', root))


def test_label_with_suffix_pairs(tmp_path):
  root = _flat(tmp_path)
  lab = os.path.join(root, 'train', 'label')
  os.rename(os.path.join(lab, 'train2.png'), os.path.join(lab, 'train2_gt.png'))
  assert source.dataset_info(_cfg(tmp_path, 'octa_folder', root))['num_examples'] == {'train': 3}


def test_corrupt_file_is_named(tmp_path):
  root = _flat(tmp_path)
  p = os.path.join(root, 'train', 'image', 'train2.png')
  data = open(p, 'rb').read()
  open(p, 'wb').write(data[: len(data) // 2])
  with pytest.raises(DataIntegrityError, match=r'train/image/train2\.png'):
    source.dataset_info(_cfg(tmp_path, 'octa_folder', root))


def test_size_mismatch_names_both(tmp_path):
  root = _flat(tmp_path)
  Image.fromarray(np.zeros((30, 32), np.uint8)).save(os.path.join(root, 'train', 'label', 'train0.png'))
  with pytest.raises(DataIntegrityError,
                     match=r'label/train0\.png: label is 30x32 but image .*image/train0\.png is 32x32'):
    source.dataset_info(_cfg(tmp_path, 'octa_folder', root))


def test_non_binary_label_names_values(tmp_path):
  root = _flat(tmp_path)
  lab = np.zeros((32, 32), np.uint8)
  lab[3, 3], lab[4, 4] = 7, 255
  Image.fromarray(lab).save(os.path.join(root, 'train', 'label', 'train1.png'))
  with pytest.raises(DataIntegrityError, match=r'train1\.png is not binary: found values \[0, 7, 255\]'):
    source.dataset_info(_cfg(tmp_path, 'octa_folder', root))


def test_16bit_and_rgb_images_are_converted(tmp_path):
  root = _flat(tmp_path)
  a16 = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)
  Image.fromarray(a16).save(os.path.join(root, 'train', 'image', 'train0.png'))
  rgb = np.zeros((32, 32, 3), np.uint8)
  rgb[..., 1] = 100
  Image.fromarray(rgb).save(os.path.join(root, 'train', 'image', 'train1.png'))
  cfg = _cfg(tmp_path, 'octa_folder', root)
  raw = source.prepared(cfg).splits['train']
  got = dict(zip(raw.ids, raw.images))
  np.testing.assert_array_equal(
      got['train0'], np.rint(a16.astype(np.float32) / 65535 * 255).astype(np.uint8))
  np.testing.assert_array_equal(got['train1'], np.full((32, 32), round(0.587 * 100), np.uint8))


def test_bad_names(tmp_path):
  with pytest.raises(DataError, match=r'Unknown dataset .rose3.'):
    source.dataset_info(_cfg(tmp_path, 'rose3', tmp_path))
  with pytest.raises(DataError, match=r'needs a config.*svc_dvc'):
    source.dataset_info(_cfg(tmp_path, 'rose1', tmp_path))
  with pytest.raises(DataError, match=r'no configs'):
    source.dataset_info(_cfg(tmp_path, 'rose2/x', tmp_path))


def test_every_problem_is_reported_at_once(tmp_path):
  root = testing.write_flat(str(tmp_path / 'data'), splits=(('train', 4), ('test', 2)), size=32)
  os.remove(os.path.join(root, 'train', 'label', 'train1.png'))          # unpaired
  p = os.path.join(root, 'train', 'image', 'train2.png')                  # truncated
  open(p, 'wb').write(open(p, 'rb').read()[:40])
  lab = np.zeros((32, 32), np.uint8)
  lab[0, 0] = 3
  Image.fromarray(lab).save(os.path.join(root, 'test', 'label', 'test0.png'))  # not binary
  with pytest.raises(DataIntegrityError) as e:
    source.dataset_info(_cfg(tmp_path, 'octa_folder', root))
  text = str(e.value)
  assert text.startswith('3 problem(s)')
  for part in ('train/image/train1.png', 'train/image/train2.png', 'test/label/test0.png'):
    assert part in text
  assert not os.path.exists(tmp_path / 'cache') or not any(
      f.endswith('.npz') for f in os.listdir(tmp_path / 'cache'))
