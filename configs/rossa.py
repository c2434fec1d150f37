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
from cosnet_jax import recipes
from cosnet_jax.data.config import SPACING_UM


def get_config(arg=None):
  v = recipes.parse_arg(arg, **dict(recipes.VARIANT_KEYS, sam=False))
  if v.sam:
    splits = dict(train_split='train_manual[:90]+train_sam', val_split='train_manual[90:]',
                  test_split='val')
  else:
    splits = dict(train_split='train_manual')
  return recipes.dataset_config('rossa', v, spacing_um=SPACING_UM['rossa'], **splits)
