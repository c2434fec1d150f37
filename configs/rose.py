r"""ROSE (Ma et al., IEEE TMI 2021), the four sets the paper reports on; the
argument's `set` picks one:
  set=rose1_svc      ROSE-1 SVC (superficial plexus, 304x304): thick branch on
                     thick_gt, thin branch on thin_gt, evaluated against gt
  set=rose1_dvc      ROSE-1 DVC (deep plexus, centreline labels; thick = thin = gt),
                     metrics with a 1-pixel dilation tolerance (ROSE practice)
  set=rose1_svc_dvc  ROSE-1 SVC+DVC: gt of SVC_DVC, thick / thin from the SVC
                     thick_gt / thin_gt (what the authors' released code trains with)
  set=rose2          ROSE-2 (centreline labels; thick = thin = gt), 1-pixel tolerance
ROSE has no validation split: val is every 10th official-train image
(docs/data.md). Other keys as configs/octa500_3m.py (cpu, row, steps, ...).

  cosnet-train --config rose:set=rose1_svc,cpu --workdir runs/rose1_svc \
      --config.data.root=/path/to/ROSE
  cosnet-train --config rose:set=rose2 --workdir runs/rose2_paper --config.data.root=/path/to/ROSE
"""
from cosnet_jax import config as config_lib
from cosnet_jax.configs import common
from cosnet_jax.errors import ConfigError

# set -> (dataset name, metric tolerance in pixels)
SETS = {
    'rose1_svc': ('rose1/svc', 0),
    'rose1_dvc': ('rose1/dvc', 1),
    'rose1_svc_dvc': ('rose1/svc_dvc', 0),
    'rose2': ('rose2', 1),
}


def get_config(arg=None):
  arg = common.parse_arg(arg, **common.VARIANTS, set='rose1_svc')
  if arg.set not in SETS:
    raise ConfigError(f'config argument set={arg.set!r}: expected one of {", ".join(SETS)}')
  c = config_lib.base_config()   # the paper: ResNeSt-50, Adam 3e-4, MSE, batch 8, 300 + 300 epochs
  c.data.name, c.eval.tolerance = SETS[arg.set]
  if arg.cpu:
    common.cpu_model(c, crop=96, batch=8, lr=1e-3, seg_loss='bce_dice', steps=1500,
                     refine_steps=300)
  common.apply_variants(c, arg)
  return c
