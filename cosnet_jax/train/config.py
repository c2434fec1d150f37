"""The full config tree, assembled from each package's defaults.

`configs/*.py` call `base_config()` and override fields. The contract names
(`seed`, `data.name`, `data.root`, `model.name`, `train.batch_size`,
`train.num_steps`, `refine.num_steps`) are relied on by docs and outside tools.
"""

import ml_collections

from cosnet_jax.contrast.config import default_contrast_config
from cosnet_jax.data.config import default_data_config
from cosnet_jax.models.config import default_model_config, default_refine_config


def optimizer_config(lr: float = 3e-4) -> ml_collections.ConfigDict:
  """Adam, lr 3e-4, weight decay 1e-4 (coupled L2, as torch Adam), poly 0.9."""
  o = ml_collections.ConfigDict()
  o.name = 'adam'            # 'adam' (L2 in the gradient, as torch) | 'adamw'
  o.learning_rate = lr
  o.weight_decay = 1e-4
  o.poly_power = 0.9         # lr * (1 - step / num_steps) ** poly_power
  o.warmup_steps = 0
  o.grad_clip_norm = 0.0     # 0 = no clipping
  o.ema_decay = 0.0          # > 0: validation, selection, checkpoints' inference
                             # weights and stage 2 use an exponential moving
                             # average of the parameters (see train/state.py)
  return o


def base_config() -> ml_collections.ConfigDict:
  """The paper's settings (ResNeSt-50 COSNet, 300 + 300 epochs, batch 8)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = default_data_config()
  c.model = default_model_config('cosnet_resnest50')
  c.contrast = default_contrast_config()
  c.optimizer = optimizer_config()

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 8         # global, over all devices and processes
  c.train.num_steps = -1         # > 0 wins over num_epochs
  c.train.num_epochs = 300
  c.train.log_every = 10
  c.train.eval_every = 500       # validation (never test) for model selection
  c.train.checkpoint_every = 500
  c.train.max_steps_per_run = -1  # > 0: checkpoint and exit after this many steps (time-sliced jobs)

  c.refine = ml_collections.ConfigDict()
  c.refine.model = default_refine_config()
  c.refine.optimizer = optimizer_config()
  c.refine.batch_size = 8
  c.refine.num_steps = -1        # 0 skips stage 2; > 0 wins over num_epochs
  c.refine.num_epochs = 300
  c.refine.loss = 'mse'          # the authors' MSE vs the full vessel mask; or 'bce'
  # Validate stage 2 once before its first step too. The refiner starts as the
  # identity on the stage-1 map, so that start competes in the val selection and
  # a refinement that only lowers val Dice is not kept (False: only trained
  # steps compete, as in runs before 2026-11-27).
  c.refine.select_start = True

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 4          # rounded up to a multiple of the device count
  c.eval.threshold = 'otsu'      # per-image Otsu (the paper) | a float
  c.eval.tolerance = 0           # dilation radius for centreline labels (ROSE DVC / ROSE-2: 1)
  c.eval.select_metric = 'dice'  # validation metric of the best checkpoint
  c.eval.final_split = 'test'    # evaluated with the best checkpoint at the end; '' = none
  c.eval.tta = 'none'            # final evaluation: 'none' | 'hflip' | 'flips' (mirror
                                 # test-time augmentation) | 'flips_shifts' (the 4
                                 # mirrors x 4 one-pixel shifts); validation never uses it
  return c


def cpu_overrides(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A small model on crops: trains in minutes on a 2-core CPU."""
  c.model = default_model_config('cosnet_small')
  c.data.crop_size = 128
  c.train.batch_size = 8
  c.train.num_epochs = -1
  c.train.num_steps = 600
  c.train.eval_every = 100
  c.train.checkpoint_every = 100
  c.contrast.max_views = 50
  c.contrast.min_pixels = 50
  c.contrast.max_samples = 512
  c.refine.batch_size = 8
  c.refine.num_epochs = -1
  c.refine.num_steps = 200
  return c
