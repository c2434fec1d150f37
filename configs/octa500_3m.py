r"""OCTA-500 3M (3x3 mm, 304x304, 9.87 um per pixel), ILM-OPL projection,
large-vessel labels, official splits (train 10301-10440 / val 10441-10450 /
test 10451-10500). data.root: the official release folder (holding OCTA_3M/)
or a flat {train,val,test}/{image,label} copy.

The argument (configs/common.py VARIANTS) selects the recipe:
  (none)          the paper: ResNeSt-50 COSNet, 300 + 300 epochs (an accelerator)
  cpu             the small COSNet on 96 px crops, 1500 + 300 steps (the README's CPU rows)
  cpu,row=a       an ablation row (a b c d e f; README table)
  cpu,steps=6000  a longer budget; cpu,encoder=wide the twice as wide encoder

  python -m cosnet_jax.main --config configs/octa500_3m.py:cpu --workdir runs/o3m \
      --config.data.root=/path/to/OCTA500_3M
  python -m cosnet_jax.main --config configs/octa500_3m.py --workdir runs/o3m_paper \
      --config.data.root=/path/to/OCTA500_3M
"""
from cosnet_jax import config as config_lib
from cosnet_jax.configs import common
from cosnet_jax.data.datasets import SPACING_UM


def get_config(arg=None):
  arg = common.parse_arg(arg, **common.VARIANTS)
  c = config_lib.base_config()   # the paper: ResNeSt-50, Adam 3e-4, MSE, batch 8, 300 + 300 epochs
  c.data.name = 'octa500/3m_ilm_opl_largevessel'
  c.data.spacing_um = SPACING_UM['octa500/3m']
  if arg.cpu:
    common.cpu_model(c, crop=96, batch=8, lr=1e-3, seg_loss='bce_dice', steps=1500,
                     refine_steps=300)
  common.apply_variants(c, arg)
  return c
