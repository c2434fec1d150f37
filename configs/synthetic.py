r"""Quick start: no download. The CPU recipe on procedurally generated OCTA
images, shortened to 160 + 40 steps, then evaluated on the synthetic test
split; a few minutes on a 2-core CPU. Keys as configs/octa500_3m.py.

  python -m cosnet_jax.main --config configs/synthetic.py --workdir runs/quickstart
"""
from cosnet_jax import config as config_lib
from cosnet_jax.configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, **common.VARIANTS)
  c = config_lib.base_config()
  c.data.name = 'synthetic_octa'
  common.cpu_model(c, crop=96, batch=8, lr=1e-3, seg_loss='bce_dice', steps=160,
                   refine_steps=40)
  c.train.log_every, c.train.eval_every, c.train.checkpoint_every = 20, 80, 80
  common.apply_variants(c, arg)
  return c
