"""Per-image Otsu threshold in JAX (matches skimage / OpenCV on uint8 images)."""
from typing import Optional

import jax
import jax.numpy as jnp

NUM_BINS = 256


def otsu_threshold(prob: jax.Array, valid: Optional[jax.Array] = None
                   ) -> jax.Array:
  """Otsu threshold of each probability map, on its 8-bit quantisation.

  The map is quantised as `uint8(p * 255)` (truncation, as numpy / cv2 on the
  authors' side); the threshold is the bin t maximising the between-class
  variance of {q <= t} vs {q > t}, first maximum on ties, i.e.
  `skimage.filters.threshold_otsu(uint8(p*255)[valid])` (= cv2's
  THRESH_OTSU); a constant map gives its value. Returned as t / 255, so the
  prediction is `p > threshold` like the authors' code.

  Args:
    prob: float [N, H, W] (or [N, ...]) probabilities in [0, 1].
    valid: optional bool/float [N, H, W]; only valid pixels enter the
      histogram. An image without valid pixels gets threshold 0.

  Returns:
    float32 [N] thresholds in [0, 1].
  """
  n = prob.shape[0]
  p = jax.lax.stop_gradient(prob).reshape(n, -1).astype(jnp.float32)
  q = jnp.clip(jnp.floor(p * 255.0), 0, NUM_BINS - 1).astype(jnp.int32)
  if valid is None:
    weight = jnp.ones(q.shape, jnp.int32)
  else:
    weight = (valid.reshape(n, -1) > 0).astype(jnp.int32)
  rows = jnp.broadcast_to(jnp.arange(n)[:, None], q.shape)
  hist = jnp.zeros((n, NUM_BINS), jnp.int32).at[rows, q].add(weight)

  bins = jnp.arange(NUM_BINS, dtype=jnp.int32)
  # Exact integer prefix sums; w2 / s2 are the counts / sums of bins > t.
  w1 = jnp.cumsum(hist, axis=1)
  s1 = jnp.cumsum(hist * bins, axis=1)
  w2 = w1[:, -1:] - w1
  s2 = s1[:, -1:] - s1
  w1f, w2f = w1.astype(jnp.float32), w2.astype(jnp.float32)
  mean1 = s1.astype(jnp.float32) / jnp.maximum(w1f, 1.0)
  mean2 = s2.astype(jnp.float32) / jnp.maximum(w2f, 1.0)
  var = w1f * w2f * jnp.square(mean1 - mean2)
  var = jnp.where((w1 > 0) & (w2 > 0), var, -1.0)
  best = jnp.argmax(var, axis=1)
  # Constant (or empty) map: no split exists; use its (lowest) value.
  lowest = jnp.argmax(hist > 0, axis=1)
  t = jnp.where(jnp.max(var, axis=1) >= 0.0, best, lowest)
  return t.astype(jnp.float32) / 255.0
