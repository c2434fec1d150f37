r"""Your own OCTA folder: images and binary vessel labels paired by file name.

Layouts (docs/data.md): {train,val,test}/{image,label}/<id>.<ext>, any of the
splits present, or a single pair of folders image/ + label/. Without a val
split, data.holdout_fraction (10 %) of the training images is held out for
checkpoint selection (data.holdout_seed; the ids go to WORKDIR/splits.json);
without a test split the final report uses val. Every pair is checked before
the first step (`python -m cosnet_jax.verify --config configs/folder.py
--config.data.root=DIR` checks without training). Set the pixel spacing with
--config.data.spacing_um=UM (recorded in exported models).

  python -m cosnet_jax.main --config configs/folder.py:cpu --workdir runs/mine \
      --config.data.root=/path/to/folder       # the CPU recipe (minutes to an hour)
  python -m cosnet_jax.main --config configs/folder.py --workdir runs/mine_paper \
      --config.data.root=/path/to/folder       # the paper model (an accelerator)
"""
from cosnet_jax import recipes


def get_config(arg=None):
  return recipes.dataset_config('octa_folder', arg)
