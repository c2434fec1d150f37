"""Checks of the `config.contrast` section (defaults: cosnet_jax.config.contrast_config)."""
from cosnet_jax.errors import ConfigError

SEG_LOSS_KINDS = ('mse', 'bce', 'dice', 'bce_dice')


def check_contrast_config(cfg) -> None:
  """Raises ConfigError naming the offending `contrast.*` key."""
  def bad(key, msg):
    raise ConfigError(f'config.contrast.{key}: {msg} (got {cfg[key]!r})')

  for key in ('num_classes', 'max_samples', 'max_views', 'queue_len',
              'pixels_per_image'):
    if int(cfg[key]) < 1:
      bad(key, 'must be >= 1')
  if int(cfg.min_pixels) < 0:
    bad('min_pixels', 'must be >= 0')
  for key in ('temperature', 'base_temperature'):
    if float(cfg[key]) <= 0:
      bad(key, 'must be > 0')
  if float(cfg.weight) < 0:
    bad('weight', 'must be >= 0')
  if float(cfg.thin_weight) < 0:
    bad('thin_weight', 'must be >= 0')
  if not 0.0 <= float(cfg.hard_fraction) <= 1.0:
    bad('hard_fraction', 'must lie in [0, 1]')
  if cfg.seg_loss not in SEG_LOSS_KINDS:
    bad('seg_loss', f'must be one of {SEG_LOSS_KINDS}')
  classes = tuple(int(c) for c in cfg.enqueue_classes)
  if any(c < 0 or c >= int(cfg.num_classes) for c in classes):
    bad('enqueue_classes', f'classes must lie in [0, {int(cfg.num_classes)})')
  if not cfg.use_memory and not cfg.in_batch:
    bad('use_memory', 'with use_memory=False set in_batch=True, else there is '
        'nothing to contrast against')
