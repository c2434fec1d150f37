r"""ROSSA (320x320): train on train_manual, select on val, report on test.
ROSSA's test split is distributed separately: without it the final report
uses val (decided and logged at the start). Arguments as configs/octa500_3m.py,
plus
  sam=1   train on train_manual[:90] + train_sam (the semi-automatic labels),
          select on train_manual[90:], report on val, which stays unseen:
          ROSSA's part of configs/octa_general.py on its own.

  python -m cosnet_jax.main --config configs/rossa.py:cpu --workdir runs/rossa \
      --config.data.root=/path/to/ROSSA
  python -m cosnet_jax.main --config configs/rossa.py:cpu,sam,scale_aug,intensity_aug=all \
      --workdir runs/rossa_sam --config.data.root=/path/to/ROSSA
"""
from cosnet_jax import config as config_lib
from cosnet_jax.configs import common
from cosnet_jax.data.datasets import SPACING_UM


def get_config(arg=None):
  arg = common.parse_arg(arg, **common.VARIANTS, sam=False)
  c = config_lib.base_config()   # the paper: ResNeSt-50, Adam 3e-4, MSE, batch 8, 300 + 300 epochs
  c.data.name = 'rossa'
  c.data.spacing_um = SPACING_UM['rossa']
  if arg.sam:
    c.data.train_split = 'train_manual[:90]+train_sam'
    c.data.val_split, c.data.test_split = 'train_manual[90:]', 'val'
    c.eval.final_split = 'val'
  else:
    c.data.train_split = 'train_manual'
  if arg.cpu:
    common.cpu_model(c, crop=96, batch=8, lr=1e-3, seg_loss='bce_dice', steps=1500,
                     refine_steps=300)
  common.apply_variants(c, arg)
  return c
