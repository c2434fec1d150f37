r"""ROSSA (320x320): train on train_manual, select on val, report on test.
ROSSA's test split is distributed separately: without it the final report
uses val (decided and logged at the start). Arguments as configs/octa500_3m.py.

  python -m cosnet_jax.main --config configs/rossa.py:cpu --workdir runs/rossa \
      --config.data.root=/path/to/ROSSA
"""
from cosnet_jax import recipes
from cosnet_jax.data.config import SPACING_UM


def get_config(arg=None):
  return recipes.dataset_config('rossa', arg, train_split='train_manual',
                                spacing_um=SPACING_UM['rossa'])
