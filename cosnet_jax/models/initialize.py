"""Fast variable initialisation on CPU.

`module.init` of COSNet draws ~200 parameter arrays; XLA:CPU at its default
optimisation level spends minutes compiling those RNG calls (cosnet_tiny: ~100 s
jitted or eager on the shared 2-core machine). Compiling the same init with
LLVM optimisations off takes a fraction of that (~25 s there) and gives the same
variables; init runs once, so its speed does not matter.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

FAST_COMPILE = {'xla_backend_optimization_level': 0}


def init_variables(module: nn.Module, rng: jax.Array, *inputs: Any, **kwargs: Any) -> dict:
  """Same result as `module.init(rng, *inputs, **kwargs)`, compiled for speed.

  Keyword arguments are static (e.g. train=False, with_embeddings=True).
  COSNet's variables do not depend on the image size, so a small dummy input
  (e.g. zeros [1, 32, 32, 1]) is enough.
  """
  fn = jax.jit(lambda key, *xs: module.init(key, *xs, **kwargs))
  try:
    compiled = fn.lower(rng, *inputs).compile(compiler_options=FAST_COMPILE)
  except Exception:  # pylint: disable=broad-except  # backend without that option
    return fn(rng, *inputs)
  return compiled(rng, *inputs)


def init_fast(jitted: Any, *args: Any) -> Any:
  """Calls an already-jitted init-like function compiled with FAST_COMPILE."""
  try:
    compiled = jitted.lower(*args).compile(compiler_options=FAST_COMPILE)
  except Exception:  # pylint: disable=broad-except  # backend without that option
    return jitted(*args)
  return compiled(*args)


def compile_fast(jitted: Any, *args: Any) -> Any:
  """`jitted` compiled with FAST_COMPILE for `args`' shapes (reusable callable)."""
  try:
    return jitted.lower(*args).compile(compiler_options=FAST_COMPILE)
  except Exception:  # pylint: disable=broad-except  # backend without that option
    return jitted
