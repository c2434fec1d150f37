"""Top-k over the last axis that stays a partial top-k on XLA:CPU."""
from typing import Tuple

import jax
import jax.numpy as jnp


def top_k_last_axis(x: jax.Array, k: int) -> Tuple[jax.Array, jax.Array]:
  """`jax.lax.top_k(x, k)`: values and indices [..., k] of the k largest.

  top_k lowers to sort + slice, which XLA turns back into a partial top-k
  only while the slice stays a plain [..., :k]. Slicing the result further or
  using only the indices lets XLA fuse the slices and keeps a FULL sort
  (far slower on CPU; experiments/README.md, "Performance"). Consuming the values
  in the indices (a `where` on NaN values, which never changes them) keeps
  both outputs alive and the pattern intact. (An optimization_barrier does
  the same in isolation but crashes XLA:CPU's TopkDecomposer inside the
  train step's graph.) Consume each output whole: slicing it along a
  leading axis (one top_k over stacked rows, then `idx[:, :, 0]`) broke the
  pattern the same way in `sample_anchors` (a test checks its HLO).
  """
  values, indices = jax.lax.top_k(x, k)
  indices = jnp.where(jnp.isnan(values), jnp.zeros_like(indices), indices)
  return values, indices
