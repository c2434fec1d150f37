r"""Your own OCTA folder: images and binary vessel labels paired by file name.

Layouts (docs/data.md): {train,val,test}/{image,label}/<id>.<ext>, any of the
splits present, or a single pair of folders image/ + label/. Without a val
split, data.holdout_fraction (10 %) of the training images is held out for
checkpoint selection (data.holdout_seed; the ids go to WORKDIR/splits.json);
without a test split the final report uses val. Every pair is checked before
the first step (`cosnet-verify --config folder --config.data.root=DIR` checks
without training). Set the pixel spacing with --config.data.spacing_um=UM
(recorded in exported models). Arguments as configs/octa500_3m.py.

  cosnet-train --config folder:cpu --workdir runs/mine \
      --config.data.root=/path/to/folder       # the CPU recipe (minutes to an hour)
  cosnet-train --config folder --workdir runs/mine_paper \
      --config.data.root=/path/to/folder       # the paper model (an accelerator)
"""
from cosnet_jax import config as config_lib
from cosnet_jax.configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, **common.VARIANTS)
  c = config_lib.base_config()   # the paper: ResNeSt-50, Adam 3e-4, MSE, batch 8, 300 + 300 epochs
  c.data.name = 'octa_folder'
  if arg.cpu:
    common.cpu_model(c, crop=96, batch=8, lr=1e-3, seg_loss='bce_dice', steps=1500,
                     refine_steps=300)
  common.apply_variants(c, arg)
  return c
