r"""ROSSA (320x320): train on train_manual, select on val, report on test
(ROSSA's test split is not in ../shared/data: point data.root at a copy that has
it, or set --config.data.test_split=val).

  python -m cosnet_jax.main --config configs/rossa.py --workdir runs/rossa \
      --config.data.root=../shared/data/ROSSA
  # small CPU model on crops:
  python -m cosnet_jax.main --config configs/rossa.py:cpu --workdir runs/rossa_cpu \
      --config.data.root=../shared/data/ROSSA
"""
from cosnet_jax.train.dataset_configs import dataset_config


def get_config(variant=''):
  return dataset_config('rossa', '../shared/data/ROSSA', variant=variant, train_split='train_manual')
