"""A config small enough to compile and run the real loop in tests."""

from cosnet_jax.models.config import default_model_config
from cosnet_jax.config import base_config


def tiny_config(data_cache: str, *, steps: int = 6, refine_steps: int = 2):
  c = base_config()
  c.seed = 0
  c.model = default_model_config('cosnet_tiny')
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
