r"""The CPU recipe on the synthetic data: the small COSNet on 96x96 crops,
BCE + Dice at lr 1e-3, 1500 + 300 steps. Keys as configs/octa500_3m.py.

  python -m cosnet_jax.main --config configs/cpu.py --workdir runs/cpu
  python -m cosnet_jax.main --config configs/cpu.py:row=a --workdir runs/cpu_a
"""
from cosnet_jax import config as config_lib
from cosnet_jax.configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, **common.VARIANTS)
  c = config_lib.base_config()
  common.cpu_model(c, crop=96, batch=8, lr=1e-3, seg_loss='bce_dice', steps=1500,
                   refine_steps=300)
  common.apply_variants(c, arg)
  return c
