"""COSNet first stage: ResNeSt encoder, thick and thin decoders, per-branch heads."""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cosnet_jax.models.config import ModelSpec, resolve_model_config
from cosnet_jax.models.conv_bn import batch_norm, conv
from cosnet_jax.models.decoder import ThickDecoder, ThinDecoder
from cosnet_jax.models.heads import ProjectionHead, SegmentationHead
from cosnet_jax.models.resnest import ResNeStEncoder
from cosnet_jax.models.formulation import REFERENCE, Formulation

SIZE_MULTIPLE = 32


def check_image(image: jax.Array) -> None:
  """Raises ValueError unless image is [B, H, W, 1] with H, W multiples of 32."""
  if image.ndim != 4 or image.shape[-1] != 1:
    raise ValueError(f'COSNet input must be [B, H, W, 1] grayscale, got {image.shape}')
  h, w = image.shape[1:3]
  if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
    raise ValueError(
        f'COSNet input H, W must be multiples of {SIZE_MULTIPLE}, got {h}x{w}: pad '
        'bottom/right first (data.make_eval_batches pads to data.pad_multiple)')


class COSNet(nn.Module):
  """image [B, H, W, 1] float32 in [0, 1] -> dict of branch outputs.

  Keys: thick_logits, thin_logits [B, H, W, 1] float32 (pre-sigmoid); thick,
  thin, coarse [B, H, W, 1] probabilities, coarse = max(thick, thin); with
  `with_embeddings` (and always during init): embed_thick, embed_thin
  [B, H, W, embed_dim] float32, unit L2 norm over the last axis.
  The gray image is replicated to 3 channels for the (ImageNet) stem; no
  mean/std normalisation (as the authors).
  """
  stem_width: int
  stage_widths: Sequence[int]
  stage_blocks: Sequence[int]
  radix: int
  head_width: int
  embed_dim: int
  dtype: Any = jnp.float32
  axis_name: str | None = None
  remat: bool = False
  full_res_width: int = 0   # > 0: full-resolution image skip (not COSNet)
  blur_pool: bool = False   # anti-aliased encoder down-sampling (not COSNet)
  stem_pool: bool = True    # False: no stem max pool, encoder at 2x resolution (not COSNet)
  upsample: str = 'transposed'  # decoder up-sampling ('bilinear': not COSNet)
  formulation: Formulation = REFERENCE  # how layers are computed (models/formulation.py)

  @nn.compact
  def __call__(self, image: jax.Array, train: bool = False,
               with_embeddings: bool = False) -> dict[str, jax.Array]:
    check_image(image)
    kw = dict(dtype=self.dtype, axis_name=self.axis_name)
    x = jnp.concatenate([image] * 3, axis=-1).astype(self.dtype)
    feats = ResNeStEncoder(self.stem_width, tuple(self.stage_widths),
                           tuple(self.stage_blocks), self.radix, remat=self.remat,
                           blur_pool=self.blur_pool, stem_pool=self.stem_pool,
                           formulation=self.formulation, **kw,
                           name='encoder')(x, train)
    full = None
    if self.full_res_width:
      # One 3x3 conv of the grey image at full resolution, shared by both
      # branches' last block (the encoder's first features are at H/2).
      full = conv(self.full_res_width, 3, dtype=self.dtype, name='full_res_conv')(
          image.astype(self.dtype))
      full = nn.relu(batch_norm(train, axis_name=self.axis_name, dtype=self.dtype,
                                name='full_res_bn')(full))
    d_thick = ThickDecoder(self.head_width, remat=self.remat, upsample=self.upsample,
                           formulation=self.formulation, **kw,
                           name='decoder_thick')(feats, train, full)
    d_thin = ThinDecoder(self.head_width, remat=self.remat, upsample=self.upsample,
                         formulation=self.formulation, **kw,
                         name='decoder_thin')(feats, train, full)
    thick_logits = SegmentationHead(self.dtype, name='seg_thick')(d_thick)
    thin_logits = SegmentationHead(self.dtype, name='seg_thin')(d_thin)
    thick = jax.nn.sigmoid(thick_logits)
    thin = jax.nn.sigmoid(thin_logits)
    out = dict(thick_logits=thick_logits, thin_logits=thin_logits, thick=thick,
               thin=thin, coarse=jnp.maximum(thick, thin))
    if with_embeddings or self.is_initializing():
      proj = lambda name: ProjectionHead(self.embed_dim, formulation=self.formulation,
                                         **kw, name=name)
      out['embed_thick'] = proj('proj_thick')(d_thick, train)
      out['embed_thin'] = proj('proj_thin')(d_thin, train)
    return out


def frozen_maps(model: COSNet, variables, image: jax.Array
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(thick, thin, coarse) [B, H, W, 1] of a frozen stage 1 (eval mode, no gradient):
  the refinement stage's inputs."""
  out = model.apply(variables, image, train=False, with_embeddings=False)
  return (jax.lax.stop_gradient(out['thick']), jax.lax.stop_gradient(out['thin']),
          jax.lax.stop_gradient(out['coarse']))


def cosnet_from_spec(spec: ModelSpec, *, axis_name: str | None = None,
                     formulation: Formulation = REFERENCE) -> COSNet:
  return COSNet(stem_width=spec.stem_width, stage_widths=spec.stage_widths,
                stage_blocks=spec.stage_blocks, radix=spec.radix,
                head_width=spec.head_width, embed_dim=spec.embed_dim,
                dtype=jnp.dtype(spec.dtype), axis_name=axis_name, remat=spec.remat,
                full_res_width=spec.full_res_width, blur_pool=spec.blur_pool,
                stem_pool=spec.stem_pool, upsample=spec.upsample, formulation=formulation)


def build_cosnet(model_cfg, *, axis_name: str | None = None,
                 formulation: Formulation = REFERENCE) -> COSNet:
  """COSNet for `config.model` (preset + overrides; see models/config.py).

  `axis_name`: BatchNorm (training mode) averages its statistics over this
  mapped axis (pmap / shard_map), i.e. cross-replica BN over the global batch.
  `formulation`: how layers are computed (`platform.formulation(config.platform,
  backend)`; the default is the plain layers); the variables are the same.
  Pretrained weights (`model_cfg.pretrained`) are loaded separately with
  `load_pretrained_resnest(variables, path)` after `init`.
  """
  return cosnet_from_spec(resolve_model_config(model_cfg), axis_name=axis_name,
                          formulation=formulation)


def encoder_from_spec(spec: ModelSpec, *, axis_name: str | None = None) -> ResNeStEncoder:
  """The encoder alone (same parameters as variables[...]['encoder'] of COSNet)."""
  return ResNeStEncoder(spec.stem_width, spec.stage_widths, spec.stage_blocks, spec.radix,
                        dtype=jnp.dtype(spec.dtype), axis_name=axis_name, remat=spec.remat,
                        blur_pool=spec.blur_pool, stem_pool=spec.stem_pool)
