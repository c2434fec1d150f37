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
from cosnet_jax import config as config_lib
from cosnet_jax.configs import common
from cosnet_jax.data.datasets import SPACING_UM
from cosnet_jax.errors import ConfigError

# The network's spacing: OCTA-500 3M's (experiments/README.md, "Scale").
TARGET_SPACING_UM = SPACING_UM['octa500/3m']


def get_config(arg=None):
  arg = common.parse_arg(arg, **dict(common.VARIANTS, scale_aug=True, intensity_aug='all'),
                         sam=True, spacing=True, without='')
  if arg.without not in ('', '6m', 'rossa'):
    raise ConfigError(f"config argument without={arg.without!r}: expected '6m' or 'rossa'")
  c = config_lib.base_config()   # the paper: ResNeSt-50, Adam 3e-4, MSE, batch 8, 300 + 300 epochs
  c.data.name = 'octa500/3m_ilm_opl_largevessel'
  c.data.key = 'octa500_3m'
  c.data.spacing_um = SPACING_UM['octa500/3m']
  # Each dataset (3M, 6M, ROSSA) a third of every batch, ROSSA's split between
  # its manual and semi-automatic labels.
  c.data.weight = 1.0
  if arg.without != '6m':
    c.data.mix.octa500_6m = config_lib.mix_source(
        'octa500/6m_ilm_opl_largevessel', weight=1.0, spacing_um=SPACING_UM['octa500/6m'],
        train_split='train', val_split='val', test_split='')
  if arg.without != 'rossa':
    c.data.mix.rossa = config_lib.mix_source(
        'rossa', weight=0.5 if arg.sam else 1.0, spacing_um=SPACING_UM['rossa'],
        train_split='train_manual[:90]', val_split='train_manual[90:]', test_split='val')
    if arg.sam:
      c.data.mix.rossa_sam = config_lib.mix_source(
          'rossa', weight=0.5, spacing_um=SPACING_UM['rossa'], train_split='train_sam',
          val_split='', test_split='')
  if arg.spacing:
    c.data.target_spacing_um = TARGET_SPACING_UM
  if arg.cpu:
    common.cpu_model(c, crop=96, batch=8, lr=1e-3, seg_loss='bce_dice', steps=1500,
                     refine_steps=300)
  if arg.intensity_aug == 'none':
    arg.intensity_aug = ''
  common.apply_variants(c, arg)
  return c
