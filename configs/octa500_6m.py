r"""OCTA-500 6M (6x6 mm, 400x400, 15 um per pixel), ILM-OPL projection,
large-vessel labels, official splits (train 10001-10180 / val 10181-10200 /
test 10201-10300). Arguments as configs/octa500_3m.py.

  python -m cosnet_jax.main --config configs/octa500_6m.py:cpu --workdir runs/o6m \
      --config.data.root=/path/to/OCTA-500
"""
from cosnet_jax import recipes
from cosnet_jax.data.config import SPACING_UM


def get_config(arg=None):
  return recipes.dataset_config('octa500/6m_ilm_opl_largevessel', arg,
                                spacing_um=SPACING_UM['octa500/6m'])
