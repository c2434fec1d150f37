"""Defaults of the `config.data` section (see docs/data.md)."""
from __future__ import annotations

import ml_collections

# Pixel spacing (micrometres per pixel) of the datasets: OCTA-500 3M is
# 3 x 3 mm at 304 px, 6M 6 x 6 mm at 400 px (published). ROSSA's is not
# published and is taken as 3M's: a model trained on 3M alone scores best on
# ROSSA val unresampled or enlarged (0.857 at 1x, 0.861 at 1.25x) and worse
# shrunk (0.832 at 0.95x, 0.801 at 0.8x; experiments/README.md, "Scale").
SPACING_UM = {
    'octa500/3m': 3000.0 / 304,
    'octa500/6m': 6000.0 / 400,
    'rossa': 3000.0 / 304,
}


def known_spacing(name: str) -> float:
  """The published pixel spacing of dataset `name` (um), 0 if unknown."""
  for prefix, um in SPACING_UM.items():
    if name.startswith(prefix):
      return um
  return 0.0


# data.scale_range of the `scale_aug` config variant: random isotropic
# rescaling by a factor drawn log-uniformly in this range.
SCALE_AUG_RANGE = (0.7, 1.5)
INTENSITY_AUGMENTATIONS = ('gamma', 'blur', 'noise', 'stripes', 'lowres')
# What the spec 'all' switches on ('lowres' is named on its own).
ALL_INTENSITY = ('gamma', 'blur', 'noise', 'stripes')


def default_augment_config() -> ml_collections.ConfigDict:
  """`config.data.augment`: scanner-like intensity augmentations (all off by default).

  gamma: image ** exp(u), u uniform in +-gamma (contrast curve of another device).
  blur_prob, blur_sigma: with this probability a Gaussian blur, sigma uniform
    in the range (another optical resolution / pixel spacing).
  noise_prob, noise_std: with this probability speckle: image * (1 + s n) with
    n standard normal per pixel, s uniform in the range (another noise level).
  stripes_prob, stripes_max: with this probability 1..stripes_max horizontal
    bands of 1-4 rows brightened or darkened (motion / projection artefacts
    of the en-face scan).
  lowres_prob, lowres_factor: with this probability the image is sampled a
    factor (uniform in the range) more coarsely and back (augment.lowres: a
    wider field of view at the same number of A-scans, e.g. OCTA-500 6M's
    15 um pixels resampled to 3M's 9.9).
  """
  a = ml_collections.ConfigDict()
  a.gamma = 0.0
  a.blur_prob = 0.0
  a.blur_sigma = (0.4, 1.2)
  a.noise_prob = 0.0
  a.noise_std = (0.05, 0.25)
  a.stripes_prob = 0.0
  a.stripes_max = 3
  a.lowres_prob = 0.0
  a.lowres_factor = (1.25, 2.0)
  return a


def enable_intensity_augmentations(data_cfg: ml_collections.ConfigDict, spec: str) -> None:
  """Switches on the augmentations named in `spec` ('gamma+blur', 'all', 'all+lowres')."""
  from cosnet_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  names = []
  for n in (n.strip() for n in spec.split('+')):
    names += list(ALL_INTENSITY) if n == 'all' else [n] if n else []
  for n in names:
    if n not in INTENSITY_AUGMENTATIONS:
      raise ConfigError(f'config argument intensity_aug={spec!r}: unknown {n!r}; known: '
                        + ', '.join(INTENSITY_AUGMENTATIONS) + ', all')
  a = data_cfg.augment
  if 'gamma' in names:
    a.gamma = 0.4
  if 'blur' in names:
    a.blur_prob = 0.3
  if 'noise' in names:
    a.noise_prob = 0.3
  if 'stripes' in names:
    a.stripes_prob = 0.2
  if 'lowres' in names:
    a.lowres_prob = 0.3


# Fields a `config.data.mix.<key>` source sets for itself; everything else
# (crops, augmentation, padding, workers) is shared with config.data.
SOURCE_FIELDS = ('name', 'root', 'reader', 'train_split', 'val_split', 'test_split',
                 'clahe', 'clahe_clip_limit', 'clahe_tile_grid', 'spacing_um', 'weight',
                 'holdout_fraction', 'holdout_seed')


def mix_source(name: str, root: str = '', *, weight: float = 1.0,
               spacing_um: float = 0.0, train_split: str = 'train',
               val_split: str = 'val', test_split: str = 'test'
               ) -> ml_collections.ConfigDict:
  """One `config.data.mix` entry: a further training / validation dataset.

  Its preprocessing fields (clahe*) default to config.data's when left at
  None (placeholders), so a mixture shares one preprocessing unless set.
  """
  from ml_collections import config_dict  # pylint: disable=g-import-not-at-top
  s = ml_collections.ConfigDict()
  s.name = name
  s.root = root
  s.train_split = train_split
  s.val_split = val_split
  s.test_split = test_split
  s.weight = float(weight)
  s.spacing_um = float(spacing_um)
  s.clahe = config_dict.placeholder(bool)
  s.clahe_clip_limit = config_dict.placeholder(float)
  s.clahe_tile_grid = config_dict.placeholder(int)
  return s


def default_data_config() -> ml_collections.ConfigDict:
  """Returns the data config with every field the data layer reads.

  Fields:
    name: dataset, e.g. 'synthetic_octa', 'octa500/3m_ilm_opl_largevessel',
      'rose1/svc', 'rose1/dvc', 'rose1/svc_dvc', 'rose2', 'rossa', 'octa_folder'.
    root: folder of the downloaded dataset ('' for synthetic_octa).
    reader: 'files' (decode the files; no TensorFlow) | 'tfds' (the TFDS
      builders, needs tensorflow-datasets; prepared data in tfds_dir).
    cache_dir: where decoded datasets are cached ('' = ~/.cache/cosnet_jax/data);
      entries are keyed by the files' listing, sizes and times (prepare.py).
    tfds_dir: where the 'tfds' reader prepares data ('' = ~/tensorflow_datasets).
    train_split / val_split / test_split: split names or expressions
      ('a+b', 'train[:20]': the first 20 examples, 'train[10%:]').
    holdout_fraction, holdout_seed: a dataset without `val_split` gets one
      held out of 'train' (this fraction, drawn with this seed); 0 = none.
    key: short name of this dataset in logs and reports ('' = from name).
    weight: sampling weight against the `mix` datasets.
    spacing_um: pixel spacing of this dataset in micrometres (0 = unknown).
    target_spacing_um: > 0: every image is resampled to this spacing for the
      network (training, validation, evaluation; maps are resampled back).
    scale_range: (lo, hi) random isotropic rescaling in training, a factor
      drawn log-uniformly (1, 1 = off); on top of the spacing resampling.
    mix: further datasets (name -> mix_source(...)) sampled with their weight;
      validation on each one's val split, selection on `select_on`.
    select_on: 'mean' (mean of the datasets' val scores) or a dataset key.
    clahe, clahe_clip_limit, clahe_tile_grid: CLAHE with cv2 semantics on the
      8-bit image (tile_grid tiles along each axis).
    crop_size: side of the square training crop (0 = whole image). Training
      arrays are rounded up to a multiple of pad_multiple; the extra pixels are
      padding with valid=0.
    crop_vessel_prob: probability that a crop is centred on a vessel pixel
      (otherwise the centre is uniform).
    rotation_deg: training rotation is uniform in [-rotation_deg, rotation_deg].
    flip: random horizontal and vertical flips (each with probability 1/2).
    intensity_jitter: contrast factor in 1 +- j and brightness offset in +-j.
    augment: scanner-like intensity augmentations (default_augment_config).
    pad_multiple: spatial sizes fed to the network are multiples of this.
    num_workers: threads that augment examples of a training batch.
    prefetch: batches prepared ahead in a background thread (0 = none).
    synthetic: the procedural dataset (counts per split, image size, seed).
  """
  cfg = ml_collections.ConfigDict()
  cfg.name = 'synthetic_octa'
  cfg.root = ''
  cfg.reader = 'files'
  cfg.cache_dir = ''
  cfg.tfds_dir = ''
  cfg.train_split = 'train'
  cfg.val_split = 'val'
  cfg.test_split = 'test'
  cfg.holdout_fraction = 0.1
  cfg.holdout_seed = 0
  cfg.key = ''
  cfg.weight = 1.0
  cfg.spacing_um = 0.0
  cfg.target_spacing_um = 0.0
  cfg.scale_range = (1.0, 1.0)
  cfg.mix = ml_collections.ConfigDict()
  cfg.select_on = 'mean'
  cfg.clahe = True
  cfg.clahe_clip_limit = 2.0
  cfg.clahe_tile_grid = 8
  cfg.crop_size = 0
  cfg.crop_vessel_prob = 0.5
  cfg.rotation_deg = 10.0
  cfg.flip = True
  cfg.intensity_jitter = 0.1
  cfg.augment = default_augment_config()
  cfg.pad_multiple = 32
  cfg.num_workers = 2
  cfg.prefetch = 2
  cfg.synthetic = ml_collections.ConfigDict()
  cfg.synthetic.num_train = 48
  cfg.synthetic.num_val = 8
  cfg.synthetic.num_test = 8
  cfg.synthetic.size = 304
  cfg.synthetic.seed = 0
  return cfg


def source_key(data_cfg) -> str:
  """Short name of a dataset in logs: data.key, else from the name
  ('octa500/3m_ilm_opl_largevessel' -> 'octa500_3m', 'rose1/svc' -> 'rose1_svc')."""
  if data_cfg.get('key', ''):
    return data_cfg.key
  base, _, config = data_cfg.name.partition('/')
  if base == 'octa500' and config:
    return f'octa500_{config.split("_")[0]}'
  return f'{base}_{config}' if config else base


def sources(data_cfg) -> list[tuple[str, ml_collections.ConfigDict]]:
  """[(key, data config of one dataset)]: config.data itself, then each mix entry.

  A mix entry's config is config.data with the entry's SOURCE_FIELDS set
  (placeholders left at None keep config.data's value) and no mix.
  """
  from cosnet_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  base = data_cfg.to_dict()
  base.pop('mix', None)
  primary = ml_collections.ConfigDict(base)
  out = [(source_key(data_cfg), primary)]
  for key, entry in data_cfg.get('mix', {}).items():
    d = dict(base)
    for field, value in entry.items():
      if field not in SOURCE_FIELDS:
        raise ConfigError(f'config.data.mix.{key}.{field}: not a per-dataset field; '
                          f'per-dataset fields: {", ".join(SOURCE_FIELDS)}')
      if value is not None:
        d[field] = value
    d['key'] = key
    d['config_path'] = f'config.data.mix.{key}'   # for messages about its fields
    if key in [k for k, _ in out]:
      raise ConfigError(f'config.data.mix.{key}: the key is used twice')
    out.append((key, ml_collections.ConfigDict(d)))
  for key, cfg in out:
    if float(cfg.weight) < 0:
      raise ConfigError(f'config.data{"" if key == out[0][0] else ".mix." + key}.weight='
                        f'{cfg.weight}: expected >= 0')
  if sum(float(c.weight) for _, c in out) <= 0:
    raise ConfigError('config.data.weight and the mix weights are all 0: nothing to train on')
  return out
