"""Split expressions and hold-outs, dataset mixtures, spacing and random rescaling,
the scanner-like intensity augmentations, and spacing-aware evaluation batches."""
import math
import os

import numpy as np
import pytest

from cosnet_jax.data import augment, pipeline, source, splits, testing
from cosnet_jax.data.errors import DataError
from cosnet_jax.errors import ConfigError
from cosnet_jax.data import mixture
from cosnet_jax.data import layouts
from cosnet_jax import config as config_lib
from cosnet_jax.configs import common
from cosnet_jax import config_files
from cosnet_jax.data.errors import DatasetNotFoundError


def test_split_expressions_resolve_like_slices():
  sizes = {'train': 10, 'val': 4}
  assert splits.resolve('train[:3]+val', sizes) == [('train', 0), ('train', 1), ('train', 2),
                                                   ('val', 0), ('val', 1), ('val', 2), ('val', 3)]
  assert splits.resolve('train[80%:]', sizes) == [('train', 8), ('train', 9)]
  assert splits.resolve('train[-2:]', sizes) == [('train', 8), ('train', 9)]
  assert splits.resolve('val[1:3]', sizes) == [('val', 1), ('val', 2)]
  assert splits.base_names('a[:2]+b') == ['a', 'b']
  with pytest.raises(DataError, match=r"Split 'test' .*available: train, val"):
    splits.resolve('test', sizes)
  with pytest.raises(DataError, match='cannot read'):
    splits.parse('train[:3')


def test_holdout_is_deterministic_disjoint_and_order_free():
  ids = [f'img{i:02d}' for i in range(20)]
  train, held = splits.holdout(ids, 0.1, seed=0)
  assert len(held) == 2 and sorted(train + held) == list(range(20))
  assert splits.holdout(ids, 0.1, seed=0) == (train, held)
  assert splits.holdout(ids, 0.1, seed=1)[1] != held
  # The same ids are held out whatever order the files were listed in.
  shuffled = ids[::-1]
  _, held2 = splits.holdout(shuffled, 0.1, seed=0)
  assert sorted(shuffled[i] for i in held2) == sorted(ids[i] for i in held)
  assert len(splits.holdout(ids[:3], 0.9, 0)[1]) == 2     # at most n - 1
  with pytest.raises(DataError, match='at least 2'):
    splits.holdout(ids[:1], 0.1, 0)


def test_sources_of_a_mixture():
  c = config_lib.data_config()
  c.name, c.root, c.clahe_clip_limit = 'octa500/3m_ilm_opl_largevessel', '/a', 3.0
  c.mix.rossa = config_lib.mix_source('rossa', '/b', weight=0.5, spacing_um=11.0,
                                        train_split='train_manual')
  (k1, s1), (k2, s2) = mixture.sources(c)
  assert (k1, k2) == ('octa500_3m', 'rossa')
  assert s2.name == 'rossa' and s2.root == '/b' and s2.weight == 0.5 and s2.spacing_um == 11.0
  assert s2.train_split == 'train_manual' and s2.clahe_clip_limit == 3.0   # inherited
  assert s2.crop_size == c.crop_size and 'mix' not in s2
  c.mix.rossa.clahe = False
  assert mixture.sources(c)[1][1].clahe is False
  with c.unlocked():
    c.mix.rossa.crop_size = 64
  with pytest.raises(ConfigError, match=r'config.data.mix.rossa.crop_size: not a per-dataset'):
    mixture.sources(c)


def _image(h=40, w=50, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random((h, w)) * 255).astype(np.uint8), (rng.random((h, w)) > 0.8).astype(np.uint8)


def test_scaled_warp_samples_the_source_at_centre_plus_offset_over_scale():
  image, labels = _image()
  params = augment.AugParams(top=5, left=7, angle=0.0, flip_y=False, flip_x=True,
                             contrast=1.0, brightness=0.0, scale=2.0)
  crop, out_hw = (16, 16), (16, 16)
  value, lab, valid = augment.warp(image, labels, params, crop, out_hw)
  # NumPy reference: the window is 8 x 8 source pixels centred at (5 + 3.5, 7 + 3.5).
  for i, j in ((0, 0), (3, 11), (15, 15), (8, 4)):
    sy = 5 + 3.5 + (i - 7.5) / 2
    sx = 7 + 3.5 - (j - 7.5) / 2        # flipped columns
    ny, nx = math.floor(sy + 0.5), math.floor(sx + 0.5)
    assert lab[i, j] == labels[ny, nx]
    y0, x0 = math.floor(sy), math.floor(sx)
    wy, wx = sy - y0, sx - x0
    ref = (image[y0, x0] * (1 - wx) * (1 - wy) + image[y0, x0 + 1] * wx * (1 - wy)
           + image[y0 + 1, x0] * (1 - wx) * wy + image[y0 + 1, x0 + 1] * wx * wy) / 255
    assert value[i, j] == pytest.approx(ref, abs=1e-5)
  assert valid.all()


def test_random_scale_and_intensity_draw_only_when_on():
  image, labels = _image()
  vidx = np.flatnonzero(labels)
  cfg = config_lib.data_config()
  cfg.crop_size = 24
  base = [augment.augment(image, labels, vidx, np.random.default_rng(s), cfg, (32, 32))
          for s in range(5)]
  # Off (the defaults): the streams of a config saved without these fields.
  saved = cfg.to_dict()
  del saved['augment'], saved['scale_range']
  plain = config_lib.with_defaults({'data': saved}).data
  for s, b in enumerate(base):
    old = augment.augment(image, labels, vidx, np.random.default_rng(s), plain, (32, 32))
    for x, y in zip(b, old):
      np.testing.assert_array_equal(x, y)
  cfg.scale_range = (0.5, 2.0)
  scales = [augment.sample_params(np.random.default_rng(s), image.shape, (24, 24), vidx,
                                  cfg).scale for s in range(200)]
  assert 0.5 <= min(scales) < 0.6 and 1.8 < max(scales) <= 2.0
  assert abs(np.mean(np.log(scales))) < 0.12          # log-uniform about 1
  assert augment.sample_params(np.random.default_rng(0), image.shape, (24, 24), vidx, cfg,
                               scale=1.5).scale == pytest.approx(1.5 * scales[0])


def test_each_intensity_augmentation_alone():
  rng = np.random.default_rng(0)
  value = rng.random((32, 32)).astype(np.float32)
  valid = np.ones_like(value)
  valid[:, -4:] = 0
  value *= valid
  aug = config_lib.augment_config()
  assert augment.intensity(value, valid, np.random.default_rng(1), aug) is value   # all off
  aug.gamma = 0.4
  g = math.exp(np.random.default_rng(1).uniform(-0.4, 0.4))
  np.testing.assert_allclose(augment.intensity(value, valid, np.random.default_rng(1), aug),
                             value ** g * valid, rtol=1e-5, atol=1e-6)
  for field in ('blur_prob', 'noise_prob', 'stripes_prob'):
    aug = config_lib.augment_config()
    aug[field] = 1.0
    out = augment.intensity(value, valid, np.random.default_rng(2), aug)
    assert out.shape == value.shape and 0 <= out.min() and out.max() <= 1
    assert not np.allclose(out, value) and (out[:, -4:] == 0).all(), field
  aug = config_lib.augment_config()
  aug.blur_prob = 1.0
  out = augment.intensity(value, valid, np.random.default_rng(2), aug)
  assert out[:, :-6].std() < value[:, :-6].std()          # blur smooths
  # Low resolution: a factor-2 coarser sampling of a checkerboard of 1-pixel
  # squares leaves about its mean; a smooth ramp passes nearly unchanged.
  board = ((np.indices((32, 32)).sum(0) % 2) * 0.8 + 0.1).astype(np.float32)
  np.testing.assert_allclose(augment.lowres(board, 2.0)[4:-4, 4:-4], 0.5, atol=0.02)
  ramp = np.tile(np.linspace(0.2, 0.8, 32, dtype=np.float32), (32, 1))
  np.testing.assert_allclose(augment.lowres(ramp, 2.0)[:, 4:-4], ramp[:, 4:-4], atol=0.01)
  aug = config_lib.augment_config()
  aug.lowres_prob, aug.lowres_factor = 1.0, (2.0, 2.0)
  out = augment.intensity(value, valid, np.random.default_rng(3), aug)
  rng3 = np.random.default_rng(3)
  rng3.uniform()                                         # the probability draw
  factor = rng3.uniform(2.0, 2.0)
  np.testing.assert_allclose(out, np.clip(augment.lowres(value, factor), 0, 1) * valid,
                             atol=1e-6)
  names = config_lib.data_config()
  common.intensity_augmentations(names.augment, 'all+lowres')
  assert names.augment.lowres_prob > 0 and names.augment.stripes_prob > 0
  names = config_lib.data_config()
  common.intensity_augmentations(names.augment, 'all')
  assert names.augment.lowres_prob == 0 and names.augment.gamma > 0
  with pytest.raises(ConfigError, match="unknown 'sharpen'"):
    common.intensity_augmentations(config_lib.data_config().augment, 'sharpen')


@pytest.fixture
def two_folders(tmp_path):
  a = testing.write_flat(str(tmp_path / 'a'), splits=(('train', 3), ('val', 2)), size=40, seed=1)
  b = testing.write_flat(str(tmp_path / 'b'), splits=(('train', 5), ('val', 1)), size=48, seed=2)
  c = config_lib.data_config()
  c.name, c.root, c.cache_dir = 'octa_folder', a, str(tmp_path / 'cache')
  c.crop_size, c.num_workers, c.prefetch = 32, 1, 0
  c.mix.b = config_lib.mix_source('octa_folder', b, weight=3.0)
  return c


def test_mixture_batches_are_pure_and_follow_the_weights(two_folders):
  it = pipeline.make_train_iterator(two_folders, global_batch_size=4, seed=0,
                                    process_index=0, process_count=1)
  b1, b2 = it.batch(7), it.batch(7)
  for k in b1:
    np.testing.assert_array_equal(b1[k], b2[k])
  resumed = pipeline.make_train_iterator(two_folders, global_batch_size=4, seed=0,
                                         start_step=7, process_index=0, process_count=1)
  first = next(resumed)
  for k in b1:
    np.testing.assert_array_equal(first[k], b1[k])
  draws = [it.draw(step, j) for step in range(300) for j in range(4)]
  share_b = np.mean([d == 1 for d, _ in draws])
  assert 0.70 < share_b < 0.80                           # weights 1 : 3
  assert {i for d, i in draws if d == 1} == set(range(5))
  assert {i for d, i in draws if d == 0} == set(range(3))
  it.close()
  resumed.close()


def test_eval_batches_resample_to_the_models_spacing_and_keep_the_original(two_folders):
  c = two_folders
  c.spacing_um, c.target_spacing_um = 15.0, 10.0               # enlarge 1.5x
  info = source.dataset_info(c)
  assert info['scale'] == 1.5 and info['eval_size'] == (64, 64)
  batch = next(pipeline.make_eval_batches(c, 'val', batch_size=4, process_index=0,
                                          process_count=1))
  assert batch['image'].shape == (4, 64, 64, 1)
  assert list(batch['height'][:2]) == [60, 60] and list(batch['orig_height'][:2]) == [40, 40]
  img, mask = batch['original'][0]
  assert img.shape == mask.shape == (40, 40)
  np.testing.assert_allclose(pipeline.resize(img, 1.5), batch['image'][0, :60, :60, 0],
                             atol=1e-6)
  # Maps resampled back onto the file's grid (what runner.predict_split scores).
  back = pipeline.resize(batch['image'][0, :60, :60, 0], shape=(40, 40))
  assert back.shape == (40, 40) and np.corrcoef(back.ravel(), img.ravel())[0, 1] > 0.7
  lab = (np.arange(16).reshape(4, 4) % 3).astype(np.uint8)
  np.testing.assert_array_equal(pipeline.resize_nearest(lab, (8, 8)),
                                np.repeat(np.repeat(lab, 2, 0), 2, 1))


def test_a_mix_source_without_a_root_names_its_own_field(two_folders):
  two_folders.mix.b.root = ''
  (_, first), (_, second) = mixture.sources(two_folders)
  assert layouts.require_root(first) == os.path.abspath(two_folders.root)
  with pytest.raises(DatasetNotFoundError,
                     match=r'config\.data\.mix\.b\.root is empty: set --config\.data\.mix\.b\.root'):
    layouts.require_root(second)


def _recipe(name, arg):
  return config_files.load(config_files.resolve(f'{name}:{arg}'))


def test_rossa_sam_recipe_is_the_general_recipes_rossa_part():
  """`rossa:cpu,sam` is the ROSSA-alone row of the cross-domain table: the
  same images, hold-out and unseen final split as octa_general's ROSSA."""
  alone, general = _recipe('rossa', 'cpu,sam'), _recipe('octa_general', 'cpu')
  manual, sam = general.data.mix.rossa, general.data.mix.rossa_sam
  assert alone.data.train_split == f'{manual.train_split}+{sam.train_split}'
  assert alone.data.val_split == manual.val_split
  assert alone.eval.final_split == alone.data.test_split == manual.test_split == 'val'
  assert alone.data.spacing_um == manual.spacing_um == sam.spacing_um
  assert _recipe('rossa', 'cpu').data.val_split == 'val'     # the plain recipe selects on val
