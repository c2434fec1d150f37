"""Recipes: the CPU recipe, the ablation rows and the config arguments of configs/*.py.

`get_config(arg)` of a config file takes a big_vision-style argument string
(`configs/octa500_3m.py:cpu,row=a`) parsed by `parse_arg`; `dataset_config`
builds a dataset's config from it (VARIANT_KEYS lists what an argument can
say). A README row is one config file plus such an argument, a seed and a
data root.
"""
from __future__ import annotations

import ml_collections

from cosnet_jax.config import base_config
from cosnet_jax.errors import ConfigError
from cosnet_jax.models.config import default_model_config


# The CPU recipe (the README's CPU figures): the small COSNet on 96x96 crops,
# BCE + Dice at lr 1e-3 (chosen on val against the authors' MSE at 3e-4,
# experiments/README.md), 1500 + 300 steps: about 32 minutes of a 2-core
# AVX2 CPU (XLA float32 matmul ~105 GFLOP/s) for row (e).
CPU_STEPS = 1500
CPU_REFINE_STEPS = 300
# The 'wide' encoder of the CPU tables: stage widths doubled (3.5 M parameters).
WIDE_STAGE_WIDTHS = (16, 32, 64, 128)


def cpu_recipe(c: ml_collections.ConfigDict, steps: int = CPU_STEPS,
               refine_steps: int = CPU_REFINE_STEPS) -> ml_collections.ConfigDict:
  """The small COSNet on crops, the recipe of the README's CPU figures."""
  c.model = default_model_config('cosnet_small')
  c.data.crop_size = 96
  c.contrast.seg_loss = 'bce_dice'
  c.contrast.max_views = 50
  c.contrast.min_pixels = 50
  c.contrast.max_samples = 512
  c.optimizer.learning_rate = 1e-3
  c.train.batch_size = 8
  c.train.num_epochs = -1
  c.train.num_steps = steps
  c.train.log_every = 50
  c.train.eval_every = 150
  c.train.checkpoint_every = 150
  c.refine.batch_size = 8
  c.refine.num_epochs = -1
  c.refine.num_steps = refine_steps
  return c


# The ablation rows of the README (experiments/README.md): what each changes
# on top of the recipe. Row (d) is row (e) without its stage 2 (the same
# stage 1: one run of row e reports both).
ROWS = {
    'a': 'segmentation loss only',
    'b': '+ pixel contrast within the batch (no memory bank)',
    'c': '+ memory bank frozen at its random init (the authors\' released code)',
    'd': '+ memory bank updated (the method)',
    'e': '(d) + refinement stage',
    'f': '(e) without CLAHE',
}


def apply_row(c: ml_collections.ConfigDict, row: str) -> ml_collections.ConfigDict:
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
  return c


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


# Keys every dataset config accepts in its argument (configs/octa500_3m.py:cpu,row=a).
VARIANT_KEYS = dict(
    cpu=False,           # the CPU recipe (cpu_recipe) instead of the paper's
    row='e',             # ablation row (ROWS)
    steps=0,             # stage-1 steps (0: the recipe's)
    refine_steps=-1,     # stage-2 steps (-1: the recipe's or the row's)
    encoder='',          # 'wide': stage widths WIDE_STAGE_WIDTHS (CPU recipe)
    train_images=0,      # > 0: the first N training images only (scarce labels)
    contrast_weight=-1.0,  # >= 0: config.contrast.weight
    hard_fraction=-1.0,    # >= 0: config.contrast.hard_fraction (0: easy anchors only)
    optimizer='',        # 'adam' | 'adamw'
    scale_aug=False,     # random isotropic rescaling in training (data.scale_range)
    target_spacing=0.0,  # > 0: every image resampled to this spacing (um; data.target_spacing_um)
    intensity_aug='',    # '+'-joined scanner augmentations: gamma, blur, noise,
                         # stripes, or 'all' (data.augment.*)
)


def apply_variant(c: ml_collections.ConfigDict, v: ml_collections.ConfigDict
                  ) -> ml_collections.ConfigDict:
  """Applies the parsed VARIANT_KEYS `v` to the base config `c`."""
  from cosnet_jax.data import config as data_config  # pylint: disable=g-import-not-at-top
  if v.cpu:
    cpu_recipe(c)
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
    c.data.scale_range = data_config.SCALE_AUG_RANGE
  if v.target_spacing > 0:
    c.data.target_spacing_um = v.target_spacing
  if v.intensity_aug:
    data_config.enable_intensity_augmentations(c.data, v.intensity_aug)
  return c


def dataset_config(name: str, arg: str | ml_collections.ConfigDict | None = '', *,
                   train_split: str = 'train', val_split: str = 'val', test_split: str = 'test',
                   tolerance: int = 0, spacing_um: float = 0.0) -> ml_collections.ConfigDict:
  """The config of one dataset: the paper's setup, or the variant `arg` says.

  `arg`: VARIANT_KEYS items, e.g. 'cpu', 'cpu,row=a,steps=6000', or their
  parse_arg result (a recipe with keys of its own parses them first). data.root
  is left empty: the user passes --config.data.root=DIR.
  """
  v = arg if isinstance(arg, ml_collections.ConfigDict) else parse_arg(arg, **VARIANT_KEYS)
  c = base_config()
  c.data.name = name
  c.data.train_split = train_split
  c.data.val_split = val_split
  c.data.test_split = test_split
  c.data.spacing_um = float(spacing_um)
  c.eval.tolerance = tolerance
  c.eval.final_split = test_split
  return apply_variant(c, v)
