"""What the recipes share: the argument parser, the ablation rows and the variants.

A recipe file's `get_config(arg)` takes a big_vision-style argument
('cpu,row=a,steps=6000'): `parse_arg` reads it over the keys the file
accepts (VARIANTS plus its own), and `apply_variants` applies the keys that
mean the same in every recipe. The recipe's own values (crop, batch, rate,
steps, losses, augmentations) are written in its file.
"""
from __future__ import annotations

import ml_collections

from cosnet_jax import config as config_lib
from cosnet_jax.errors import ConfigError

# The ablation rows of the README (experiments/README.md): what each changes
# on top of the recipe. Row (d) is row (e) without its stage 2.
ROWS = {
    'a': 'segmentation loss only',
    'b': '+ pixel contrast within the batch (no memory bank)',
    'c': '+ memory bank frozen at its random init (the authors\' released code)',
    'd': '+ memory bank updated (the method)',
    'e': '(d) + refinement stage',
    'f': '(e) without CLAHE',
}

# Keys every dataset recipe accepts in its argument, with their defaults.
VARIANTS = dict(
    cpu=False,           # the small model on crops (the README's CPU rows)
    row='e',             # ablation row (ROWS)
    steps=0,             # stage-1 steps (0: the recipe's)
    refine_steps=-1,     # stage-2 steps (-1: the recipe's or the row's)
    encoder='',          # 'wide': WIDE_STAGE_WIDTHS
    train_images=0,      # > 0: the first N training images only (scarce labels)
    contrast_weight=-1.0,  # >= 0: config.contrast.weight
    hard_fraction=-1.0,    # >= 0: config.contrast.hard_fraction (0: easy anchors only)
    optimizer='',        # 'adam' | 'adamw'
    scale_aug=False,     # random isotropic rescaling in training (SCALE_AUG_RANGE)
    target_spacing=0.0,  # > 0: every image resampled to this spacing (um)
    crop=0,              # > 0: the training crop (pixels)
    grid=0.0,            # > 1: an enlarged grid: every image resampled to spacing / grid,
                         # the crop grown with it (the same anatomy, to the nearest 32 px)
    hires=False,         # the encoder without the stem's max pool (model.stem_pool=False)
    intensity_aug='',    # '+'-joined: gamma, blur, noise, stripes, lowres, or 'all'
)

# The 'wide' encoder of the CPU tables: the small model's stage widths doubled.
WIDE_STAGE_WIDTHS = (16, 32, 64, 128)
# Random isotropic rescaling of `scale_aug`: a factor drawn log-uniformly here.
SCALE_AUG_RANGE = (0.7, 1.5)
# Each scanner augmentation of `intensity_aug` and what it sets in config.data.augment.
INTENSITY_AUGMENTATIONS = {
    'gamma': ('gamma', 0.4),
    'blur': ('blur_prob', 0.3),
    'noise': ('noise_prob', 0.3),
    'stripes': ('stripes_prob', 0.2),
    'lowres': ('lowres_prob', 0.3),
}
# What 'all' switches on ('lowres' is named on its own).
ALL_INTENSITY = ('gamma', 'blur', 'noise', 'stripes')


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """A config argument 'cpu,row=a,steps=6000' -> ConfigDict over `defaults`.

  Each item is `key=value` or a bare `key` (True). The value takes the type
  of the key's default (bool: 1/0/true/false); an unknown key or a value of
  the wrong type is a ConfigError naming it and the known keys.
  """
  out = ml_collections.ConfigDict(dict(defaults))
  for item in (arg or '').split(','):
    item = item.strip()
    if not item:
      continue
    key, eq, text = item.partition('=')
    key = key.strip()
    if key not in defaults:
      raise ConfigError(f'config argument {item!r}: unknown key {key!r}; known: '
                        + ', '.join(sorted(defaults)))
    default = defaults[key]
    if not eq:
      if not isinstance(default, bool):
        raise ConfigError(f'config argument {key!r} needs a value ({key}=...)')
      out[key] = True
      continue
    text = text.strip()
    try:
      if isinstance(default, bool):
        if text.lower() not in ('1', '0', 'true', 'false'):
          raise ValueError
        out[key] = text.lower() in ('1', 'true')
      elif isinstance(default, int):
        out[key] = int(text)
      elif isinstance(default, float):
        out[key] = float(text)
      else:
        out[key] = text
    except ValueError:
      raise ConfigError(f'config argument {item!r}: expected a '
                        f'{type(default).__name__} value for {key!r}') from None
  return out


def apply_row(c: ml_collections.ConfigDict, row: str) -> None:
  """Sets the fields that make ablation row `row` (ROWS)."""
  if row not in ROWS:
    raise ConfigError(f'config argument row={row!r}: expected one of {sorted(ROWS)}')
  if row == 'a':
    c.contrast.weight = 0.0
  elif row == 'b':
    c.contrast.use_memory = False
    c.contrast.in_batch = True
  elif row == 'c':
    c.contrast.freeze_memory_bank = True
  elif row == 'f':
    c.data.clahe = False
  if row in ('a', 'b', 'c', 'd'):
    c.refine.num_steps = 0


def intensity_augmentations(augment: ml_collections.ConfigDict, spec: str) -> None:
  """Switches on the scanner augmentations named in `spec` ('gamma+blur', 'all')."""
  names = []
  for n in (n.strip() for n in spec.split('+')):
    names += list(ALL_INTENSITY) if n == 'all' else [n] if n else []
  for n in names:
    if n not in INTENSITY_AUGMENTATIONS:
      raise ConfigError(f'config argument intensity_aug={spec!r}: unknown {n!r}; known: '
                        + ', '.join(INTENSITY_AUGMENTATIONS) + ', all')
    field, value = INTENSITY_AUGMENTATIONS[n]
    augment[field] = value


def cpu_model(c: ml_collections.ConfigDict, *, crop: int, batch: int, lr: float,
              seg_loss: str, steps: int, refine_steps: int) -> None:
  """The small COSNet (cosnet_small) trained on crops, with the recipe's values.

  Also sets what goes with a small model on small crops: anchor caps sized
  for 96 px crops (512 per batch, 50 per image and class, classes with more
  than 50 pixels) and progress / validation / checkpoints every 50 / 150 / 150
  steps.
  """
  c.model = config_lib.model_config('cosnet_small')
  c.data.crop_size = crop
  c.train.batch_size = c.refine.batch_size = batch
  c.optimizer.learning_rate = lr
  c.contrast.seg_loss = seg_loss
  c.train.num_epochs = c.refine.num_epochs = -1
  c.train.num_steps, c.refine.num_steps = steps, refine_steps
  c.contrast.max_samples, c.contrast.max_views, c.contrast.min_pixels = 512, 50, 50
  c.train.log_every, c.train.eval_every, c.train.checkpoint_every = 50, 150, 150


def apply_variants(c: ml_collections.ConfigDict, v: ml_collections.ConfigDict) -> None:
  """Applies the VARIANTS keys other than `cpu` (the recipe's own choice) to `c`."""
  if v.steps > 0:
    c.train.num_epochs = -1
    c.train.num_steps = v.steps
  apply_row(c, v.row)
  if v.refine_steps >= 0:
    c.refine.num_epochs = -1
    c.refine.num_steps = v.refine_steps
  if v.encoder == 'wide':
    c.model.stage_widths = WIDE_STAGE_WIDTHS
  elif v.encoder:
    raise ConfigError(f"config argument encoder={v.encoder!r}: expected 'wide'")
  if v.train_images > 0:
    c.data.train_split = f'{c.data.train_split}[:{v.train_images}]'
  if v.contrast_weight >= 0:
    c.contrast.weight = v.contrast_weight
  if v.hard_fraction >= 0:
    c.contrast.hard_fraction = v.hard_fraction
  if v.optimizer:
    if v.optimizer not in ('adam', 'adamw'):
      raise ConfigError(f"config argument optimizer={v.optimizer!r}: expected 'adam' or 'adamw'")
    c.optimizer.name = v.optimizer
  if v.scale_aug:
    c.data.scale_range = SCALE_AUG_RANGE
  if v.target_spacing > 0:
    c.data.target_spacing_um = v.target_spacing
  if v.crop > 0:
    c.data.crop_size = v.crop
  if v.grid > 0:
    spacing = c.data.target_spacing_um or c.data.spacing_um
    if not spacing:
      raise ConfigError('config argument grid needs the dataset\'s pixel spacing '
                        '(config.data.spacing_um)')
    c.data.target_spacing_um = spacing / v.grid
    if c.data.crop_size > 0:
      c.data.crop_size = int(c.data.crop_size * v.grid / 32 + 0.5) * 32
  if v.hires:
    c.model.stem_pool = False
  if v.intensity_aug:
    intensity_augmentations(c.data.augment, v.intensity_aug)
