r"""OCTA-500 6M (6x6 mm, 400x400, 15 um per pixel), ILM-OPL projection,
large-vessel labels, official splits (train 10001-10180 / val 10181-10200 /
test 10201-10300). data.root: the official release folder (holding OCTA_6M/)
or a flat {train,val}/{image,label} copy; without the test subjects the final
report is on val (the selection split, so optimistic: measure held-out 6M
subjects with cosnet-evaluate). Arguments as configs/octa500_3m.py.

  python -m cosnet_jax.main --config configs/octa500_6m.py:cpu --workdir runs/o6m \
      --config.data.root=/path/to/OCTA500_6M
"""
from cosnet_jax import config as config_lib
from cosnet_jax.configs import common
from cosnet_jax.data.datasets import SPACING_UM


def get_config(arg=None):
  arg = common.parse_arg(arg, **common.VARIANTS)
  c = config_lib.base_config()   # the paper: ResNeSt-50, Adam 3e-4, MSE, batch 8, 300 + 300 epochs
  c.data.name = 'octa500/6m_ilm_opl_largevessel'
  c.data.spacing_um = SPACING_UM['octa500/6m']
  if arg.cpu:
    common.cpu_model(c, crop=96, batch=8, lr=1e-3, seg_loss='bce_dice', steps=1500,
                     refine_steps=300)
  common.apply_variants(c, arg)
  return c
