r"""OCTA-500 6M (6x6 mm, 400x400), ILM-OPL projection, large-vessel labels,
official splits (train 10001-10180 / val 10181-10200 / test 10201-10300).

  python -m cosnet_jax.main --config configs/octa500_6m.py --workdir runs/octa500_6m \
      --config.data.root=/path/to/OCTA-500/OCTA_6M
  # small CPU model on crops:
  python -m cosnet_jax.main --config configs/octa500_6m.py:cpu --workdir runs/octa500_6m_cpu \
      --config.data.root=/path/to/OCTA-500/OCTA_6M
"""
from cosnet_jax.train.dataset_configs import dataset_config


def get_config(variant=''):
  return dataset_config('octa500/6m_ilm_opl_largevessel', '/path/to/OCTA-500/OCTA_6M', variant=variant)
