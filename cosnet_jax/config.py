"""Every config field and its default (`base_config`), and reading saved configs.

`base_config()` is the paper's setup; `configs/*.py` (the recipes) start from
it and write their own values. Each field's default is set here and nowhere
else: library code reads fields directly, and a saved config (a run's
config.json, a model file) is read over today's defaults (`with_defaults`),
so runs saved before a field existed keep loading. The contract names
(`seed`, `data.name`, `data.root`, `model.name`, `train.batch_size`,
`train.num_steps`, `refine.num_steps`) are relied on by docs and outside
tools.
"""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from cosnet_jax.errors import ConfigError

# ------------------------------------------------------------------- model

# name -> size fields and embed_dim of a COSNet preset (`model.name`).
MODEL_PRESETS: dict[str, dict] = {
    # The paper: ResNeSt-50 encoder (blocks 3,4,6,3; 64/256/512/1024/2048 channels),
    # OCTA-Net decoders (32-channel full-resolution features), 256-d embeddings.
    'cosnet_resnest50': dict(stem_width=32, stage_widths=(64, 128, 256, 512),
                             stage_blocks=(3, 4, 6, 3), radix=2, head_width=32,
                             embed_dim=256),
    # CPU-sized: stem 16/32, stage outputs 32/64/128/256, one block per stage.
    'cosnet_small': dict(stem_width=16, stage_widths=(8, 16, 32, 64),
                         stage_blocks=(1, 1, 1, 1), radix=2, head_width=16,
                         embed_dim=32),
    # Unit tests: compiles in seconds.
    'cosnet_tiny': dict(stem_width=8, stage_widths=(4, 4, 8, 8),
                        stage_blocks=(1, 1, 1, 1), radix=2, head_width=8,
                        embed_dim=8),
}


def model_config(name: str = 'cosnet_small') -> ml_collections.ConfigDict:
  """`config.model` for preset `name`: size fields left to the preset.

  name: a MODEL_PRESETS key. The size fields (stem_width, stage_widths,
    stage_blocks, radix, head_width) are unset placeholders that take the
    preset's value; setting one overrides the preset (models/config.py).
  embed_dim: width of the pixel embeddings (sizes the memory bank); the
    preset's value, always used as set.
  dtype: compute dtype of convs, 'float32' | 'bfloat16'.
  remat: rematerialise encoder / decoder blocks (less memory, more FLOPs).
  full_res_width: > 0 adds a full-resolution image skip (not COSNet).
  blur_pool: anti-aliased encoder down-sampling (not COSNet).
  stem_pool: False leaves out the stem's max pool: encoder at 2x resolution
    (not COSNet).
  upsample: decoder up-sampling, 'transposed' (COSNet) | 'bilinear'.
  pretrained: path of resnest50-528c19ca.pth (or .npz); '' = none.
  init_from: workdir or model file of an earlier run of the same model:
    stage 1 starts from its best stage-1 weights ('' = none).
  """
  if name not in MODEL_PRESETS:
    raise ConfigError(f'config.model.name={name!r}: expected one of {sorted(MODEL_PRESETS)}')
  m = ml_collections.ConfigDict()
  m.name = name
  m.embed_dim = MODEL_PRESETS[name]['embed_dim']
  m.dtype = 'float32'
  m.remat = False
  m.full_res_width = 0
  m.blur_pool = False
  m.stem_pool = True
  m.upsample = 'transposed'
  m.pretrained = ''
  m.init_from = ''
  m.stem_width = config_dict.placeholder(int)
  m.stage_widths = config_dict.placeholder(tuple)
  m.stage_blocks = config_dict.placeholder(tuple)
  m.radix = config_dict.placeholder(int)
  m.head_width = config_dict.placeholder(int)
  return m


def refine_model_config() -> ml_collections.ConfigDict:
  """`config.refine.model`: the refinement module.

  channels: widths of the two hidden 3x3 convs (64, 128 in the paper).
  neighbourhood: side of the aggregated neighbourhood (3 -> 9 weights).
  center_logit: initial bias of the centre weight (others 0) with a zero
    kernel in the last conv: the initial output deviates from max(thick, thin)
    by at most 8*exp(-center_logit) ~ 3.6e-4 at 10.
  init_std: std of the normal init of the hidden conv kernels (authors 0.1).
  dtype: compute dtype of the convs.
  """
  r = ml_collections.ConfigDict()
  r.channels = (64, 128)
  r.neighbourhood = 3
  r.center_logit = 10.0
  r.init_std = 0.1
  r.dtype = 'float32'
  return r


# ---------------------------------------------------------------- contrast


def contrast_config() -> ml_collections.ConfigDict:
  """`config.contrast`: global pixel contrast, the authors' released values.

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
    "hard" pixels (misclassified under the per-image Otsu threshold); the rest
    are "easy". 0.5 is the method.
  queue_len: slots per class of each memory-bank queue (pixel and segment).
  pixels_per_image: pixel embeddings enqueued per (image, class).
  use_memory: contrast anchors against the memory bank (the paper's method).
  freeze_memory_bank: never update the bank. The authors' released code never
    enqueues (a key-name mismatch), so its bank stays the random init; True
    reproduces that.
  in_batch: also contrast anchors against the batch's other anchors
    (SupCon style, self-pairs excluded).
  seg_loss: 'mse' (the paper's code, on sigmoid probabilities) | 'bce' |
    'dice' | 'bce_dice'.
  enqueue_classes: the classes whose queues are written AND used as contrast
    set. The authors stored only class 1 (their background rows are zero
    vectors labelled 0; enqueue_classes=(1,) does the same).
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


# -------------------------------------------------------------------- data


def augment_config() -> ml_collections.ConfigDict:
  """`config.data.augment`: scanner-like intensity augmentations (all off).

  gamma: image ** exp(u), u uniform in +-gamma (contrast curve of another device).
  blur_prob, blur_sigma: with this probability a Gaussian blur, sigma uniform
    in the range (another optical resolution / pixel spacing).
  noise_prob, noise_std: with this probability speckle: image * (1 + s n) with
    n standard normal per pixel, s uniform in the range.
  stripes_prob, stripes_max: with this probability 1..stripes_max horizontal
    bands of 1-4 rows brightened or darkened (motion / projection artefacts).
  lowres_prob, lowres_factor: with this probability the image is sampled a
    factor (uniform in the range) more coarsely and back (a wider field of
    view at the same number of A-scans).
  """
  a = ml_collections.ConfigDict()
  a.gamma = 0.0
  a.blur_prob = 0.0
  a.blur_sigma = (0.4, 1.2)
  a.noise_prob = 0.0
  a.noise_std = (0.05, 0.25)
  a.stripes_prob = 0.0
  a.stripes_max = 3
  a.lowres_prob = 0.0
  a.lowres_factor = (1.25, 2.0)
  return a


def data_config() -> ml_collections.ConfigDict:
  """`config.data`: the dataset, its splits, preprocessing and augmentation.

  name: dataset, e.g. 'synthetic_octa', 'octa500/3m_ilm_opl_largevessel',
    'rose1/svc', 'rose1/dvc', 'rose1/svc_dvc', 'rose2', 'rossa', 'octa_folder'.
  root: folder of the downloaded dataset ('' for synthetic_octa).
  reader: 'files' (decode the files; no TensorFlow) | 'tfds' (the TFDS
    builders, needs tensorflow-datasets; prepared data in tfds_dir).
  cache_dir: where decoded datasets are cached ('' = $XDG_CACHE_HOME/cosnet_jax/data,
    ~/.cache/cosnet_jax/data without it);
    entries are keyed by the files' listing, sizes and times.
  tfds_dir: where the 'tfds' reader prepares data ('' = ~/tensorflow_datasets).
  train_split / val_split / test_split: split names or expressions
    ('a+b', 'train[:20]': the first 20 examples, 'train[10%:]').
  holdout_fraction, holdout_seed: a dataset without `val_split` gets one held
    out of 'train' (this fraction, drawn with this seed); 0 = none.
  key: short name of this dataset in logs and reports ('' = from name).
  weight: sampling weight against the `mix` datasets.
  spacing_um: pixel spacing of this dataset in micrometres (0 = unknown).
  target_spacing_um: > 0: every image is resampled to this spacing for the
    network (training, validation, evaluation; maps are resampled back).
  scale_range: (lo, hi) random isotropic rescaling in training, a factor drawn
    log-uniformly (1, 1 = off); on top of the spacing resampling.
  mix: further datasets (key -> mix_source(...)) sampled with their weight;
    validation on each one's val split, selection on `select_on`.
  select_on: 'mean' (mean of the datasets' val scores) or a dataset key.
  clahe, clahe_clip_limit, clahe_tile_grid: CLAHE with cv2 semantics on the
    8-bit image (tile_grid tiles along each axis).
  crop_size: side of the square training crop (0 = whole image); arrays are
    rounded up to a multiple of pad_multiple (the extra pixels: valid=0).
  crop_vessel_prob: probability that a crop is centred on a vessel pixel.
  rotation_deg: training rotation uniform in [-rotation_deg, rotation_deg].
  flip: random horizontal and vertical flips (each with probability 1/2).
  intensity_jitter: contrast factor in 1 +- j and brightness offset in +-j.
  augment: scanner-like intensity augmentations (augment_config).
  pad_multiple: spatial sizes fed to the network are multiples of this.
  num_workers: threads that augment examples of a training batch.
  prefetch: batches prepared ahead in a background thread (0 = none).
  synthetic: the procedural dataset (counts per split, image size, seed).
  """
  d = ml_collections.ConfigDict()
  d.name = 'synthetic_octa'
  d.root = ''
  d.reader = 'files'
  d.cache_dir = ''
  d.tfds_dir = ''
  d.train_split = 'train'
  d.val_split = 'val'
  d.test_split = 'test'
  d.holdout_fraction = 0.1
  d.holdout_seed = 0
  d.key = ''
  d.weight = 1.0
  d.spacing_um = 0.0
  d.target_spacing_um = 0.0
  d.scale_range = (1.0, 1.0)
  d.mix = ml_collections.ConfigDict()
  d.select_on = 'mean'
  d.clahe = True
  d.clahe_clip_limit = 2.0
  d.clahe_tile_grid = 8
  d.crop_size = 0
  d.crop_vessel_prob = 0.5
  d.rotation_deg = 10.0
  d.flip = True
  d.intensity_jitter = 0.1
  d.augment = augment_config()
  d.pad_multiple = 32
  d.num_workers = 2
  d.prefetch = 2
  d.synthetic = ml_collections.ConfigDict()
  d.synthetic.num_train = 48
  d.synthetic.num_val = 8
  d.synthetic.num_test = 8
  d.synthetic.size = 304
  d.synthetic.seed = 0
  return d


# Fields a `config.data.mix.<key>` entry sets for itself; everything else
# (crops, augmentation, padding, workers) is config.data's.
MIX_FIELDS = ('name', 'root', 'reader', 'train_split', 'val_split', 'test_split',
              'clahe', 'clahe_clip_limit', 'clahe_tile_grid', 'spacing_um', 'weight',
              'holdout_fraction', 'holdout_seed')


def mix_source(name: str, root: str = '', *, weight: float = 1.0, spacing_um: float = 0.0,
               train_split: str = 'train', val_split: str = 'val', test_split: str = 'test'
               ) -> ml_collections.ConfigDict:
  """One `config.data.mix` entry: a further training / validation dataset.

  Its CLAHE fields are placeholders: left at None they take config.data's
  value (data/mixture.py), so a mixture shares one preprocessing unless set.
  """
  s = ml_collections.ConfigDict()
  s.name = name
  s.root = root
  s.train_split = train_split
  s.val_split = val_split
  s.test_split = test_split
  s.weight = float(weight)
  s.spacing_um = float(spacing_um)
  s.clahe = config_dict.placeholder(bool)
  s.clahe_clip_limit = config_dict.placeholder(float)
  s.clahe_tile_grid = config_dict.placeholder(int)
  return s


# ------------------------------------------------------ optimizer, platform


def optimizer_config(lr: float = 3e-4) -> ml_collections.ConfigDict:
  """Adam at `lr`, weight decay 1e-4 (coupled L2, as torch Adam), poly 0.9.

  name: 'adam' (L2 in the gradient, as torch) | 'adamw'.
  poly_power: lr * (1 - step / num_steps) ** poly_power.
  warmup_steps: linear warm-up from 0.
  grad_clip_norm: global-norm clipping (0 = none).
  ema_decay: > 0: validation, selection, checkpoints' inference weights and
    stage 2 use an exponential moving average of the parameters.
  """
  o = ml_collections.ConfigDict()
  o.name = 'adam'
  o.learning_rate = lr
  o.weight_decay = 1e-4
  o.poly_power = 0.9
  o.warmup_steps = 0
  o.grad_clip_norm = 0.0
  o.ema_decay = 0.0
  return o


def platform_config() -> ml_collections.ConfigDict:
  """`config.platform`: how layers are computed and compiled (same results).

  grouped_conv: 'auto' | 'native' | 'slices' (models/formulation.py).
  dense_group_width: -1 auto (CPU 4, else 0); 0 = never dense.
  fused_projection: 'auto' | 'on' | 'off'.
  max_pool: 'auto' | 'strided' | 'reduce_window'.
  xla_options: 'auto' (CPU: XLA's own convolutions) | 'off' (compilation.py).
  """
  p = ml_collections.ConfigDict()
  p.grouped_conv = 'auto'
  p.dense_group_width = -1
  p.fused_projection = 'auto'
  p.max_pool = 'auto'
  p.xla_options = 'auto'
  return p


# -------------------------------------------------------------------- all


def base_config() -> ml_collections.ConfigDict:
  """The paper's settings (ResNeSt-50 COSNet, 300 + 300 epochs, batch 8)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = data_config()
  c.model = model_config('cosnet_resnest50')
  c.contrast = contrast_config()
  c.optimizer = optimizer_config()
  c.platform = platform_config()

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
  c.refine.model = refine_model_config()
  c.refine.optimizer = optimizer_config()
  c.refine.batch_size = 8
  c.refine.num_steps = -1        # 0 skips stage 2; > 0 wins over num_epochs
  c.refine.num_epochs = 300
  c.refine.loss = 'mse'          # the authors' MSE vs the full vessel mask; or 'bce'
  # Validate stage 2 once before its first step too: the refiner starts as the
  # identity on the stage-1 map, so a refinement that only lowers val Dice is not kept.
  c.refine.select_start = True

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 4          # rounded up to a multiple of the device count
  c.eval.threshold = 'otsu'      # per-image Otsu (the paper) | a float
  c.eval.tolerance = 0           # dilation radius for centreline labels (ROSE DVC / ROSE-2: 1)
  c.eval.select_metric = 'dice'  # validation metric of the best checkpoint
  c.eval.final_split = 'test'    # evaluated with the best checkpoint at the end; '' = none
  c.eval.tta = 'none'            # final evaluation: 'none' | 'hflip' | 'flips' | 'flips_shifts'
                                 # (inference/tta.py); validation never uses it
  return c


# ----------------------------------------------------------- saved configs


def _merge(defaults: ml_collections.ConfigDict, saved: dict) -> None:
  """Writes `saved`'s values into `defaults` (keys `defaults` lacks are kept as new)."""
  with defaults.unlocked():
    for k, v in saved.items():
      if isinstance(v, dict) and isinstance(defaults.get(k), ml_collections.ConfigDict):
        _merge(defaults[k], v)
      elif isinstance(v, dict):
        defaults[k] = ml_collections.ConfigDict(v)
      else:
        cur = defaults.get(k, None)
        if isinstance(cur, tuple) and isinstance(v, list):
          v = tuple(v)
        defaults[k] = v


def with_defaults(saved: dict) -> ml_collections.ConfigDict:
  """A saved config (config.json of a run or a model file) over today's defaults.

  Fields added to the config tree since the run keep their defaults, and each
  `data.mix` entry gets every mix field (older files lack some), so older runs
  and model files stay usable.
  """
  c = base_config()
  _merge(c, saved)
  with c.data.unlocked():
    for key, entry in c.data.mix.items():
      full = mix_source(entry.name)
      _merge(full, entry.to_dict())
      c.data.mix[key] = full
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
