"""The full config tree (`base_config`), and reading saved or named configs.

`configs/*.py` build on `base_config()` through cosnet_jax.recipes. The
contract names (`seed`, `data.name`, `data.root`, `model.name`,
`train.batch_size`, `train.num_steps`, `refine.num_steps`) are relied on by
docs and outside tools.
"""
from __future__ import annotations

import ml_collections

from cosnet_jax.contrast.config import default_contrast_config
from cosnet_jax.data.config import default_data_config
from cosnet_jax.models.config import default_model_config, default_refine_config
from cosnet_jax.errors import ConfigError  # noqa: F401  (re-exported: config.ConfigError)
from cosnet_jax.platform import default_platform_config


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
  c.platform = default_platform_config()

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 8         # global, over all devices and processes
  c.train.num_steps = -1         # > 0 wins over num_epochs
  c.train.num_epochs = 300
  c.train.log_every = 10
  c.train.eval_every = 500       # validation (never test) for model selection
  c.train.checkpoint_every = 500
  c.train.max_steps_per_run = -1  # > 0: checkpoint and exit after this many steps
  c.train.time_budget_s = -1.0    # > 0: checkpoint and exit after this many seconds
                                  # of this process (time-sliced jobs; run again to resume)

  c.refine = ml_collections.ConfigDict()
  c.refine.model = default_refine_config()
  c.refine.optimizer = optimizer_config()
  c.refine.batch_size = 8
  c.refine.num_steps = -1        # 0 skips stage 2; > 0 wins over num_epochs
  c.refine.num_epochs = 300
  c.refine.loss = 'mse'          # the authors' MSE vs the full vessel mask; or 'bce'
  # Validate stage 2 once before its first step too. The refiner starts as the
  # identity on the stage-1 map, so that start competes in the val selection and
  # a refinement that only lowers val Dice is not kept.
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




def _merge(defaults: ml_collections.ConfigDict, saved: dict, path: str = '') -> None:
  """Writes `saved`'s values into `defaults` (keys `defaults` lacks are kept as new)."""
  with defaults.unlocked():
    for k, v in saved.items():
      if isinstance(v, dict) and isinstance(defaults.get(k), ml_collections.ConfigDict):
        _merge(defaults[k], v, f'{path}{k}.')
      elif isinstance(v, dict):
        defaults[k] = ml_collections.ConfigDict(v)
      else:
        cur = defaults.get(k, None)
        if isinstance(cur, tuple) and isinstance(v, list):
          v = tuple(v)
        defaults[k] = v


def with_defaults(saved: dict) -> ml_collections.ConfigDict:
  """A saved config (config.json of a run or a model file) over today's defaults.

  Fields added to the config tree since the run keep their defaults, so older
  runs and model files stay usable.
  """
  c = base_config()
  _merge(c, saved)
  return c


def flat_keys(cfg: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  """Dotted names of every leaf field ('data.root', 'model.name', ...)."""
  keys = []
  for k, v in cfg.items():
    path = f'{prefix}{k}'
    if isinstance(v, ml_collections.ConfigDict):
      keys += flat_keys(v, path + '.')
    else:
      keys.append(path)
  return keys


def flat_items(d: dict, prefix: str = '') -> dict:
  """{'a.b': value} of a nested dict."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flat_items(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out
