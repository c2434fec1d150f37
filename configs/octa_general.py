r"""One vessel model for every public OCTA training set: OCTA-500 3M, OCTA-500
6M and ROSSA (manual and semi-automatic labels) mixed, each dataset at its
own pixel spacing resampled to a common one, random isotropic rescaling and
scanner-like intensity augmentations (gamma, blur, speckle, stripes).
Validation on OCTA-500 3M val, OCTA-500 6M val and a hold-out of ROSSA's
manual training images (ROSSA val stays unseen); the checkpoint is selected
on their mean.

Three data roots: --config.data.root (OCTA-500 3M, official or flat layout),
--config.data.mix.octa500_6m.root (OCTA-500 6M) and
--config.data.mix.rossa.root / --config.data.mix.rossa_sam.root (ROSSA).

  python -m cosnet_jax.main --config configs/octa_general.py:cpu --workdir runs/general \
      --config.data.root=/path/to/OCTA500_3M \
      --config.data.mix.octa500_6m.root=/path/to/OCTA500_6M \
      --config.data.mix.rossa.root=/path/to/ROSSA --config.data.mix.rossa_sam.root=/path/to/ROSSA

Argument keys: those of configs/octa500_3m.py (cpu, row, steps, ...), plus
  without=6m     leave OCTA-500 6M out (the leave-one-dataset-out rows);
  without=rossa  leave ROSSA out
  sam=0          without ROSSA's semi-automatic labels
  spacing=0      no common spacing (each dataset at its own pixel size)
  scale_aug=0 / intensity_aug=none   without those augmentations
"""
from cosnet_jax import recipes
from cosnet_jax.data.config import SPACING_UM, mix_source
from cosnet_jax.errors import ConfigError

# The network's spacing: OCTA-500 3M's. Training at 3M enlarged 1.25x (where a
# 3M-only model peaks at inference) lowered 3M test, the 6M sample and ROSSA
# val alike (experiments/README.md, "Scale").
TARGET_SPACING_UM = SPACING_UM['octa500/3m']


def get_config(arg=None):
  keys = dict(recipes.VARIANT_KEYS, sam=True, spacing=True, without='')
  keys['scale_aug'] = True
  keys['intensity_aug'] = 'all'
  v = recipes.parse_arg(arg, **keys)
  if v.intensity_aug == 'none':
    v.intensity_aug = ''
  if v.without not in ('', '6m', 'rossa'):
    raise ConfigError(f"config argument without={v.without!r}: expected '6m' or 'rossa'")
  c = recipes.base_config()
  c.data.name = 'octa500/3m_ilm_opl_largevessel'
  c.data.key = 'octa500_3m'
  c.data.spacing_um = SPACING_UM['octa500/3m']
  # Each dataset (3M, 6M, ROSSA) a third of every batch, ROSSA's split
  # between its manual and semi-automatic labels.
  c.data.weight = 1.0
  if v.without != '6m':
    c.data.mix.octa500_6m = mix_source('octa500/6m_ilm_opl_largevessel', weight=1.0,
                                       spacing_um=SPACING_UM['octa500/6m'],
                                       train_split='train', val_split='val', test_split='')
  if v.without != 'rossa':
    c.data.mix.rossa = mix_source('rossa', weight=0.5 if v.sam else 1.0,
                                  spacing_um=SPACING_UM['rossa'],
                                  train_split='train_manual[:90]', val_split='train_manual[90:]',
                                  test_split='val')
    if v.sam:
      c.data.mix.rossa_sam = mix_source('rossa', weight=0.5, spacing_um=SPACING_UM['rossa'],
                                        train_split='train_sam', val_split='', test_split='')
  if v.spacing:
    c.data.target_spacing_um = TARGET_SPACING_UM
  c = recipes.apply_variant(c, v)
  return c
