"""Model config section (`config.model`, `config.refine`) and the named size presets.

`config.model.name` selects a preset (`PRESETS`). The size fields
(`stem_width`, `stage_widths`, `stage_blocks`, `radix`, `head_width`) default to
unset placeholders that take the preset's value; setting one explicitly
overrides the preset. `embed_dim` is an ordinary field (the training code sizes
the memory bank from it): `default_model_config(name)` fills it in with that
preset's value, and it always wins over the preset.

Size fields:
  stem_width:   width of the deep stem's first two 3x3 convs; the stem outputs
                2 * stem_width channels at H/2 (`x0`).
  stage_widths: bottleneck widths of the four ResNeSt stages; stage k outputs
                4 * stage_widths[k] channels (`x2..x5` at H/4 .. H/32).
  stage_blocks: bottleneck blocks per stage.
  radix:        split-attention radix of the encoder (2 in ResNeSt).
  head_width:   channels of the last (full-resolution) decoder block of each
                branch, the input of the segmentation and projection heads.

Not part of COSNet (default off): `full_res_width` > 0 adds a 3x3 conv + BN +
ReLU of the input image at full resolution whose output is concatenated into
the last decoder block of both branches. COSNet's last block sees the image
only through H/2 features; on OCTA-500 almost all errors of a trained model
are one-pixel border placements (experiments/README.md).

Not part of COSNet either (default on): `stem_pool=False` leaves out the
encoder's 3x3/2 max pool after the stem, so every encoder stage runs at twice
the resolution (same parameters but the decoders' H/2 up-sampling): a
high-resolution path for 1-3 px vessels at about 4x the encoder's FLOPs.

Not part of COSNet either (default off; `models/antialias.py`): `blur_pool`
anti-aliases every down-sampling of the encoder (same parameters, so ImageNet
weights still load), and `upsample='bilinear'` replaces the decoders' 2x2
stride-2 transposed convs by a 1x1 conv + bilinear 2x up-sampling.
"""
from __future__ import annotations

import dataclasses

import ml_collections
from ml_collections import config_dict

SIZE_FIELDS = ('stem_width', 'stage_widths', 'stage_blocks', 'radix', 'head_width')
DTYPES = ('float32', 'bfloat16')
UPSAMPLES = ('transposed', 'bilinear')


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Fully resolved architecture of one COSNet (all sizes concrete)."""
  name: str
  stem_width: int
  stage_widths: tuple[int, int, int, int]
  stage_blocks: tuple[int, int, int, int]
  radix: int
  head_width: int
  embed_dim: int
  dtype: str = 'float32'
  remat: bool = False
  full_res_width: int = 0
  blur_pool: bool = False
  stem_pool: bool = True
  upsample: str = 'transposed'

  @property
  def stage_channels(self) -> tuple[int, ...]:
    """Output channels of the four encoder stages (x2, x3, x4, x5)."""
    return tuple(4 * w for w in self.stage_widths)

  @property
  def stem_channels(self) -> int:
    """Channels of the stem output x0 (H/2)."""
    return 2 * self.stem_width


# name -> (size fields, embed_dim)
PRESETS: dict[str, dict] = {
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


def default_model_config(name: str = 'cosnet_small') -> ml_collections.ConfigDict:
  """Defaults of `config.model` for preset `name` (size fields left to the preset)."""
  if name not in PRESETS:
    raise ValueError(f'config.model.name={name!r}: expected one of {sorted(PRESETS)}')
  cfg = ml_collections.ConfigDict()
  cfg.name = name
  cfg.embed_dim = PRESETS[name]['embed_dim']
  cfg.dtype = 'float32'          # compute dtype of convs: 'float32' | 'bfloat16'
  cfg.remat = False              # rematerialise encoder / decoder blocks
  cfg.full_res_width = 0         # > 0: full-resolution image skip (not COSNet; see above)
  cfg.blur_pool = False          # anti-aliased encoder down-sampling (not COSNet)
  cfg.stem_pool = True           # False: no stem max pool, encoder at 2x resolution (not COSNet)
  cfg.upsample = 'transposed'    # decoder up-sampling: 'transposed' (COSNet) | 'bilinear'
  cfg.pretrained = ''            # path of resnest50-528c19ca.pth (or .npz); '' = none
  cfg.init_from = ''             # workdir of an earlier run of the same model: stage 1
                                 # starts from its best stage-1 checkpoint ('' = none)
  cfg.stem_width = config_dict.placeholder(int)
  cfg.stage_widths = config_dict.placeholder(tuple)
  cfg.stage_blocks = config_dict.placeholder(tuple)
  cfg.radix = config_dict.placeholder(int)
  cfg.head_width = config_dict.placeholder(int)
  return cfg


def resolve_model_config(model_cfg) -> ModelSpec:
  """Preset of `model_cfg.name`, overridden by the explicitly set size fields.

  Raises ValueError naming the offending `config.model.<field>`.
  """
  name = model_cfg.get('name', None)
  if name not in PRESETS:
    raise ValueError(f'config.model.name={name!r}: expected one of {sorted(PRESETS)}')
  values = dict(PRESETS[name])
  for field in SIZE_FIELDS + ('embed_dim',):
    value = model_cfg.get(field, None)
    if value is not None:
      values[field] = tuple(value) if isinstance(value, (list, tuple)) else value
  dtype = model_cfg.get('dtype', 'float32')
  if dtype not in DTYPES:
    raise ValueError(f'config.model.dtype={dtype!r}: expected one of {DTYPES}')
  full_res = model_cfg.get('full_res_width', 0) or 0
  if not isinstance(full_res, int) or full_res < 0:
    raise ValueError(f'config.model.full_res_width={full_res!r}: expected an int >= 0')
  blur_pool = model_cfg.get('blur_pool', False)
  if not isinstance(blur_pool, bool):
    raise ValueError(f'config.model.blur_pool={blur_pool!r}: expected True or False')
  stem_pool = model_cfg.get('stem_pool', True)
  if not isinstance(stem_pool, bool):
    raise ValueError(f'config.model.stem_pool={stem_pool!r}: expected True or False')
  upsample = model_cfg.get('upsample', 'transposed')
  if upsample not in UPSAMPLES:
    raise ValueError(f'config.model.upsample={upsample!r}: expected one of {UPSAMPLES}')
  spec = ModelSpec(name=name, dtype=dtype, remat=bool(model_cfg.get('remat', False)),
                   full_res_width=full_res, blur_pool=blur_pool, stem_pool=stem_pool,
                   upsample=upsample,
                   **values)
  _check_spec(spec)
  return spec


def _check_spec(spec: ModelSpec) -> None:
  for field in ('stage_widths', 'stage_blocks'):
    value = getattr(spec, field)
    if len(value) != 4 or any(int(v) < 1 for v in value):
      raise ValueError(f'config.model.{field}={value!r}: expected 4 positive ints')
  if spec.radix < 1:
    raise ValueError(f'config.model.radix={spec.radix}: expected >= 1')
  for w in spec.stage_widths:
    if w % spec.radix:
      raise ValueError(f'config.model.stage_widths={spec.stage_widths}: each width must '
                       f'be divisible by radix={spec.radix}')
  # Decoder blocks use split attention with cardinality 2 and radix 2 (groups 4).
  for field, c in (('stem_width', spec.stem_channels), ('stage_widths', spec.stage_channels[0]),
                   ('stage_widths', spec.stage_channels[1]),
                   ('stage_widths', spec.stage_channels[2]), ('head_width', spec.head_width)):
    if c % 4:
      raise ValueError(f'config.model.{field}: decoder width {c} must be divisible by 4')
  if spec.embed_dim < 1:
    raise ValueError(f'config.model.embed_dim={spec.embed_dim}: expected >= 1')


def default_refine_config() -> ml_collections.ConfigDict:
  """Module fields of `config.refine` (the fine-tune / refinement module).

  channels:      widths of the two hidden 3x3 convs (64, 128 in the paper).
  neighbourhood: side of the aggregated neighbourhood (3 -> 9 weights).
  center_logit:  initial bias of the centre weight (others 0) with a zero kernel
                 in the last conv: the initial output deviates from
                 max(thick, thin) by at most 8*exp(-center_logit) ~ 3.6e-4 at 10.
  init_std:      std of the normal init of the hidden conv kernels (authors 0.1).
  dtype:         compute dtype of the convs.
  """
  cfg = ml_collections.ConfigDict()
  cfg.channels = (64, 128)
  cfg.neighbourhood = 3
  cfg.center_logit = 10.0
  cfg.init_std = 0.1
  cfg.dtype = 'float32'
  return cfg
