"""Supervised pixel InfoNCE against a contrast set, and segmentation losses."""
from typing import Tuple

import jax
import jax.numpy as jnp

from cosnet_jax.contrast.config import SEG_LOSS_KINDS
from cosnet_jax.contrast.sampling import Anchors

_NEG_BIG = -1e30   # finite "minus infinity" for masked logits


def pixel_contrast_loss(anchors: Anchors, contrast_feat: jax.Array,
                        contrast_label: jax.Array, contrast_valid: jax.Array, *,
                        temperature: float, base_temperature: float,
                        self_contrast: bool = False,
                        self_index: jax.Array | None = None
                        ) -> Tuple[jax.Array, jax.Array]:
  """Sum over valid anchors of the supervised InfoNCE loss, and their count.

  For anchor i with positives P(i) (same label) and negatives N(i) (other
  label) among the valid contrast rows, s_ij = a_i . c_j / T:

    L_i = -(T / T_base) / |P(i)| * sum_{p in P(i)}
          log( exp(s_ip) / (exp(s_ip) + sum_{n in N(i)} exp(s_in)) )

  computed after subtracting the row max (stop-gradient). An anchor is valid
  when `anchors.valid` and |P(i)| > 0. Invalid rows contribute exactly 0 value
  and gradient (so no valid anchor => loss 0, gradient 0, never NaN).

  Args:
    anchors: Anchors with feat [M, D], label [M], valid [M].
    contrast_feat: float [K, D]; contrast_label int [K]; contrast_valid bool [K].
    temperature, base_temperature: T and T_base.
    self_contrast: static; also contrast against the anchors themselves
      (in-batch, gradients flow through both sides), excluding the self-pair.
    self_index: optional int [M]: column of `contrast_feat` that holds anchor
      i itself (e.g. in an all-gathered, detached copy of the batch's
      anchors); that column is excluded from anchor i's row.

  Returns:
    (loss_sum, num_valid) float32 scalars; the mean is
    loss_sum / max(num_valid, 1). A data-parallel caller psums both first.
  """
  a = anchors.feat.astype(jnp.float32)
  a_label = anchors.label
  a_valid = anchors.valid.astype(bool)
  c_feat = contrast_feat.astype(jnp.float32)
  c_label = contrast_label
  c_valid = contrast_valid.astype(bool)
  m = a.shape[0]
  k0 = c_feat.shape[0]
  if self_contrast:
    c_feat = jnp.concatenate([c_feat, a], axis=0)
    c_label = jnp.concatenate([c_label, a_label], axis=0)
    c_valid = jnp.concatenate([c_valid, a_valid], axis=0)
  k = c_feat.shape[0]
  if k == 0:
    zero = jnp.sum(a) * 0.0
    return zero, zero

  col_ok = jnp.broadcast_to(c_valid[None, :], (m, k))
  if self_contrast:
    col = jnp.arange(k)[None, :]
    col_ok = col_ok & (col != (k0 + jnp.arange(m))[:, None])
  if self_index is not None:
    col_ok = col_ok & (jnp.arange(k)[None, :] != self_index[:, None])

  logits = (a @ c_feat.T) / temperature                          # [M, K]
  masked = jnp.where(col_ok, logits, _NEG_BIG)
  row_max = jax.lax.stop_gradient(jnp.max(masked, axis=1, keepdims=True))
  shifted = masked - row_max
  same = a_label[:, None] == c_label[None, :]
  pos = same & col_ok
  neg = (~same) & col_ok
  # log sum_{n in N(i)} exp(s_in), itself max-shifted so that it never
  # underflows to log(0); -big (not -inf) when there is no negative.
  neg_max = jax.lax.stop_gradient(
      jnp.max(jnp.where(neg, shifted, _NEG_BIG), axis=1, keepdims=True))
  # (Mask before exp: exp of a masked entry could overflow, and where() would
  # then turn its zero cotangent into NaN.)
  neg_sum = jnp.sum(jnp.exp(jnp.where(neg, shifted - neg_max, _NEG_BIG)),
                    axis=1, keepdims=True)
  has_neg = jnp.any(neg, axis=1, keepdims=True)
  log_neg = jnp.where(
      has_neg, neg_max + jnp.log(jnp.where(has_neg, neg_sum, 1.0)), _NEG_BIG)
  # log( exp(s_ip) / (exp(s_ip) + sum_n exp(s_in)) ), stable.
  log_prob = shifted - jnp.logaddexp(shifted, log_neg)
  n_pos = jnp.sum(pos, axis=1)
  mean_log_prob = (jnp.sum(jnp.where(pos, log_prob, 0.0), axis=1)
                   / jnp.maximum(n_pos, 1).astype(jnp.float32))
  loss = -(temperature / base_temperature) * mean_log_prob      # [M]
  row_valid = a_valid & (n_pos > 0)
  loss_sum = jnp.sum(jnp.where(row_valid, loss, 0.0))
  num_valid = jnp.sum(row_valid).astype(jnp.float32)
  return loss_sum, num_valid


def segmentation_loss(logits: jax.Array, target: jax.Array,
                      weight: jax.Array, kind: str) -> jax.Array:
  """Per-pixel-weighted segmentation loss of one branch; scalar.

  Args:
    logits: float [B, H, W, 1] pre-sigmoid outputs.
    target: float [B, H, W, 1] in {0, 1}.
    weight: float [B, H, W, 1] (e.g. `valid`); 0 = pixel does not count.
    kind: 'mse' (on sigmoid probabilities, the paper's code) | 'bce' (from
      logits, stable) | 'dice' (soft Dice per image, smooth 1, mean over
      images with weight) | 'bce_dice' (sum of the two).

  Returns:
    float32 scalar: weighted mean (0 when all weights are 0).
  """
  if kind not in SEG_LOSS_KINDS:
    raise ValueError(f'config.contrast.seg_loss: unknown kind {kind!r}, '
                     f'expected one of {SEG_LOSS_KINDS}')
  x = logits.astype(jnp.float32)
  t = target.astype(jnp.float32)
  w = jnp.broadcast_to(weight.astype(jnp.float32), x.shape)

  def weighted_mean(per_pixel):
    total = jnp.sum(w)
    return jnp.where(total > 0, jnp.sum(w * per_pixel)
                     / jnp.where(total > 0, total, 1.0), 0.0)

  def bce():
    per_pixel = (jnp.maximum(x, 0.0) - x * t
                 + jnp.log1p(jnp.exp(-jnp.abs(x))))
    return weighted_mean(per_pixel)

  def dice():
    p = jax.nn.sigmoid(x)
    axes = tuple(range(1, x.ndim))
    inter = jnp.sum(w * p * t, axis=axes)
    denom = jnp.sum(w * p, axis=axes) + jnp.sum(w * t, axis=axes)
    per_image = 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)
    has = (jnp.sum(w, axis=axes) > 0).astype(jnp.float32)
    return jnp.sum(per_image * has) / jnp.maximum(jnp.sum(has), 1.0)

  if kind == 'mse':
    return weighted_mean(jnp.square(jax.nn.sigmoid(x) - t))
  if kind == 'bce':
    return bce()
  if kind == 'dice':
    return dice()
  return bce() + dice()


def combine_losses(seg: jax.Array, contrast_thick: jax.Array,
                   contrast_thin: jax.Array, contrast_cfg) -> jax.Array:
  """total = seg + weight * (contrast_thick + thin_weight * contrast_thin)."""
  return seg + contrast_cfg.weight * (
      contrast_thick + contrast_cfg.thin_weight * contrast_thin)
