"""Variable initialisation compiled for speed on CPU.

`module.init` of COSNet draws ~200 parameter arrays; XLA:CPU at its default
optimisation level spends minutes compiling those RNG calls (cosnet_tiny:
~100 s on a 2-core machine). Compiled with LLVM optimisations off
(`compilation.init_compiler_options`, CPU only) it takes a fraction of that and
gives the same variables; init runs once, so its own speed does not matter.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from cosnet_jax import compilation


def compile_init(jitted: Any, *args: Any) -> Any:
  """`jitted` compiled for `args`' shapes with the backend's init options."""
  options = compilation.init_compiler_options(jax.default_backend())
  lowered = jitted.lower(*args)
  return lowered.compile(compiler_options=options) if options else lowered.compile()


def init_variables(module: nn.Module, rng: jax.Array, *inputs: Any, **kwargs: Any) -> dict:
  """Same result as `module.init(rng, *inputs, **kwargs)`, compiled for speed.

  Keyword arguments are static (e.g. train=False, with_embeddings=True).
  COSNet's variables do not depend on the image size, so a small dummy input
  (e.g. zeros [1, 32, 32, 1]) is enough.
  """
  fn = jax.jit(lambda key, *xs: module.init(key, *xs, **kwargs))
  return compile_init(fn, rng, *inputs)(rng, *inputs)
