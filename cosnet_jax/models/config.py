"""From `config.model` to a fully resolved architecture (`ModelSpec`).

`config.model.name` selects a preset (`config.MODEL_PRESETS`). The size fields
(`stem_width`, `stage_widths`, `stage_blocks`, `radix`, `head_width`) default to
unset placeholders that take the preset's value; setting one explicitly
overrides the preset. `embed_dim` is an ordinary field (the training code sizes
the memory bank from it): `config.model_config(name)` fills it in with that
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

from cosnet_jax.config import MODEL_PRESETS
from cosnet_jax.errors import ConfigError

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


def resolve_model_config(model_cfg) -> ModelSpec:
  """Preset of `model_cfg.name`, overridden by the explicitly set size fields.

  Raises ConfigError naming the offending `config.model.<field>`.
  """
  name = model_cfg['name']
  if name not in MODEL_PRESETS:
    raise ConfigError(f'config.model.name={name!r}: expected one of {sorted(MODEL_PRESETS)}')
  values = dict(MODEL_PRESETS[name])
  for field in SIZE_FIELDS + ('embed_dim',):
    value = model_cfg[field]
    if value is not None:
      values[field] = tuple(value) if isinstance(value, (list, tuple)) else value
  if model_cfg['dtype'] not in DTYPES:
    raise ConfigError(f"config.model.dtype={model_cfg['dtype']!r}: expected one of {DTYPES}")
  full_res = model_cfg['full_res_width']
  if not isinstance(full_res, int) or full_res < 0:
    raise ConfigError(f'config.model.full_res_width={full_res!r}: expected an int >= 0')
  for field in ('blur_pool', 'stem_pool', 'remat'):
    if not isinstance(model_cfg[field], bool):
      raise ConfigError(f'config.model.{field}={model_cfg[field]!r}: expected True or False')
  if model_cfg['upsample'] not in UPSAMPLES:
    raise ConfigError(f"config.model.upsample={model_cfg['upsample']!r}: expected one of "
                      f'{UPSAMPLES}')
  spec = ModelSpec(name=name, dtype=model_cfg['dtype'], remat=model_cfg['remat'],
                   full_res_width=full_res, blur_pool=model_cfg['blur_pool'],
                   stem_pool=model_cfg['stem_pool'], upsample=model_cfg['upsample'],
                   **values)
  _check_spec(spec)
  return spec


def _check_spec(spec: ModelSpec) -> None:
  for field in ('stage_widths', 'stage_blocks'):
    value = getattr(spec, field)
    if len(value) != 4 or any(int(v) < 1 for v in value):
      raise ConfigError(f'config.model.{field}={value!r}: expected 4 positive ints')
  if spec.radix < 1:
    raise ConfigError(f'config.model.radix={spec.radix}: expected >= 1')
  for w in spec.stage_widths:
    if w % spec.radix:
      raise ConfigError(f'config.model.stage_widths={spec.stage_widths}: each width must '
                       f'be divisible by radix={spec.radix}')
  # Decoder blocks use split attention with cardinality 2 and radix 2 (groups 4).
  for field, c in (('stem_width', spec.stem_channels), ('stage_widths', spec.stage_channels[0]),
                   ('stage_widths', spec.stage_channels[1]),
                   ('stage_widths', spec.stage_channels[2]), ('head_width', spec.head_width)):
    if c % 4:
      raise ConfigError(f'config.model.{field}: decoder width {c} must be divisible by 4')
  if spec.embed_dim < 1:
    raise ConfigError(f'config.model.embed_dim={spec.embed_dim}: expected >= 1')
