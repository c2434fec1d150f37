r"""OCTA-500 3M (3x3 mm, 304x304, 9.87 um per pixel), ILM-OPL projection,
large-vessel labels, official splits (train 10301-10440 / val 10441-10450 /
test 10451-10500). data.root: the official release folder (holding OCTA_3M/)
or a flat {train,val,test}/{image,label} copy.

The argument selects the recipe (cosnet_jax.recipes.VARIANT_KEYS):
  (none)          the paper: ResNeSt-50 COSNet, 300 + 300 epochs (an accelerator)
  cpu             the CPU recipe of the README (row e: the method + refinement)
  cpu,row=a       an ablation row (a b c d e f; README table)
  cpu,steps=6000  a longer budget; cpu,encoder=wide the twice as wide encoder

  python -m cosnet_jax.main --config configs/octa500_3m.py:cpu --workdir runs/o3m \
      --config.data.root=/path/to/OCTA500_3M
  python -m cosnet_jax.main --config configs/octa500_3m.py --workdir runs/o3m_paper \
      --config.data.root=/path/to/OCTA500_3M
"""
from cosnet_jax import recipes
from cosnet_jax.data.config import SPACING_UM


def get_config(arg=None):
  return recipes.dataset_config('octa500/3m_ilm_opl_largevessel', arg,
                                spacing_um=SPACING_UM['octa500/3m'])
