"""The tests' tiny config: the real trainer in seconds, in process or as a config file.

  tiny_config(data_cache, steps=6, refine_steps=2)   for in-process runs (tiny_run)
  --config tests/tiny_config.py[:ARG] for the command-line tests:
    ''        synthetic data, 4 + 2 steps, validation every 2, final report on test
    'folder'  the same on an octa_folder (set --config.data.root)
    'slice'   tiny_run's schedule (6 steps, lr 3e-3) cut after 3 steps: stage 1
              only, no validation, no report; an in-process run reuses the
              train step tiny_run compiled
"""
from cosnet_jax import config as config_lib


def tiny_config(data_cache: str = '', *, steps: int = 6, refine_steps: int = 2):
  c = config_lib.base_config()
  c.seed = 0
  c.model = config_lib.model_config('cosnet_tiny')
  c.data.name = 'synthetic_octa'
  c.data.cache_dir = data_cache
  c.data.synthetic.num_train = 8
  c.data.synthetic.num_val = 4
  c.data.synthetic.num_test = 4
  c.data.synthetic.size = 64
  c.data.crop_size = 32
  c.data.num_workers = 1
  c.data.prefetch = 0
  c.contrast.max_views = 8
  c.contrast.min_pixels = 4
  c.contrast.max_samples = 64
  c.contrast.queue_len = 12
  c.contrast.pixels_per_image = 3
  c.train.batch_size = 4
  c.train.num_epochs = -1
  c.train.num_steps = steps
  c.train.log_every = 1
  c.train.eval_every = 3
  c.train.checkpoint_every = 3
  c.refine.batch_size = 4
  c.refine.num_epochs = -1
  c.refine.num_steps = refine_steps
  c.eval.batch_size = 4
  return c


def get_config(arg=''):
  if arg == 'slice':
    c = tiny_config()
    c.refine.num_steps = 0
    c.eval.final_split = ''
    c.data.val_split = ''
    c.train.max_steps_per_run = 3
  else:
    c = tiny_config(steps=4, refine_steps=2)
    c.train.eval_every = 2
    c.train.checkpoint_every = 2
  c.optimizer.learning_rate = 3e-3
  if arg == 'folder':
    c.data.name = 'octa_folder'
    c.data.synthetic.num_train = 0
  return c
