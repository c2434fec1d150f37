r"""OCTA-500 3M (3x3 mm, 304x304), ILM-OPL projection, large-vessel labels,
official splits (train 10301-10440 / val 10441-10450 / test 10451-10500).
root: the official release folder (OCTA_3M) or the flat {split}/{image,label} copy.

  python -m cosnet_jax.main --config configs/octa500_3m.py --workdir runs/octa500_3m \
      --config.data.root=../shared/data/OCTA500_3M
  # small CPU model on crops:
  python -m cosnet_jax.main --config configs/octa500_3m.py:cpu --workdir runs/octa500_3m_cpu \
      --config.data.root=../shared/data/OCTA500_3M
"""
from cosnet_jax.train.dataset_configs import dataset_config


def get_config(variant=''):
  return dataset_config('octa500/3m_ilm_opl_largevessel', '../shared/data/OCTA500_3M', variant=variant)
