"""Defaults of the `config.contrast` section (global pixel contrastive learning).

Values follow the authors' released first stage (`options.py` of
Pantherk1/COSNet, see docs/cosnet-reference.md section 2.2).
"""
import ml_collections

SEG_LOSS_KINDS = ('mse', 'bce', 'dice', 'bce_dice')


def default_contrast_config() -> ml_collections.ConfigDict:
  """Returns the contrast section with the paper-code defaults.

  Fields:
    num_classes: classes of the per-branch label maps (0 background, 1 vessel).
    weight: lambda of `total = seg + weight * (con_thick + thin_weight * con_thin)`.
    thin_weight: extra factor on the thin branch's contrastive term.
    temperature, base_temperature: InfoNCE temperature tau and the base
      temperature (the loss is scaled by tau / base_temperature).
    max_samples: cap on anchors per (global) batch and branch.
    max_views: cap on anchors per (image, class).
    min_pixels: an (image, class) gives anchors only with MORE than this many
      ground-truth pixels.
    hard_fraction: share of each (image, class)'s anchor slots drawn from its
      "hard" pixels (misclassified under the per-image Otsu threshold); the
      rest are "easy". 0.5 is the method; on OCTA-500 about 90 % of hard
      pixels lie on the 1-pixel label border (experiments/README.md).
    queue_len: slots per class of each memory-bank queue (pixel and segment).
    pixels_per_image: pixel embeddings enqueued per (image, class).
    use_memory: contrast anchors against the memory bank (the paper's method).
    freeze_memory_bank: never update the bank. The authors' released code never
      enqueues (a key-name mismatch), so its bank stays the random init; set True
      to reproduce that.
    in_batch: also contrast anchors against the batch's other anchors
      (SupCon style, self-pairs excluded).
    seg_loss: 'mse' (the paper's code, on sigmoid probabilities) | 'bce' |
      'dice' | 'bce_dice'.
    enqueue_classes: the classes whose queues are written AND used as contrast
      set. Default both (0, 1). The authors stored only class 1: their
      background rows of the contrast set are zero vectors labelled 0; the same
      happens here with enqueue_classes=(1,).
  """
  c = ml_collections.ConfigDict()
  c.num_classes = 2
  c.weight = 0.05
  c.thin_weight = 0.1
  c.temperature = 0.07
  c.base_temperature = 0.07
  c.max_samples = 1024
  c.max_views = 200
  c.min_pixels = 200
  c.hard_fraction = 0.5
  c.queue_len = 400
  c.pixels_per_image = 10
  c.use_memory = True
  c.freeze_memory_bank = False
  c.in_batch = False
  c.seg_loss = 'mse'
  c.enqueue_classes = (0, 1)
  return c


def check_contrast_config(cfg) -> None:
  """Raises ValueError naming the offending `contrast.*` key."""
  def bad(key, msg):
    raise ValueError(f'config.contrast.{key}: {msg} (got {cfg[key]!r})')

  for key in ('num_classes', 'max_samples', 'max_views', 'queue_len',
              'pixels_per_image'):
    if int(cfg[key]) < 1:
      bad(key, 'must be >= 1')
  if int(cfg.min_pixels) < 0:
    bad('min_pixels', 'must be >= 0')
  for key in ('temperature', 'base_temperature'):
    if float(cfg[key]) <= 0:
      bad(key, 'must be > 0')
  if cfg.seg_loss not in SEG_LOSS_KINDS:
    bad('seg_loss', f'must be one of {SEG_LOSS_KINDS}')
  classes = tuple(int(c) for c in cfg.enqueue_classes)
  if any(c < 0 or c >= int(cfg.num_classes) for c in classes):
    bad('enqueue_classes', f'classes must lie in [0, {int(cfg.num_classes)})')
  if not cfg.use_memory and not cfg.in_batch:
    bad('use_memory', 'with use_memory=False set in_batch=True, else there is '
        'nothing to contrast against')
