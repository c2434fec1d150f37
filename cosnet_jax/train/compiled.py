"""The jitted functions of each training stage, built once per process per config.

`stage1_functions(config, mesh, num_steps)` and `stage2_functions(...)` return
the module, optimizer and data-parallel train step of a stage, plus its
compiled initialiser (the eval-mode passes are validation.py's). They are cached (`functools.lru_cache`) on the
frozen config sections they depend on, the schedule length and the mesh, so
runs of the same config in one process (tests, sweeps, resumed slices) reuse
the compiled programs. `Builders` is what `train_and_evaluate` builds its
stages with; a test may pass its own (e.g. a step that fails on purpose).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import ml_collections
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cosnet_jax import models, sharding
from cosnet_jax.models.formulation import formulation
from cosnet_jax.train import state as state_lib
from cosnet_jax.train import steps as steps_lib

# The config sections each stage's functions depend on.
STAGE1_SECTIONS = ('model', 'contrast', 'optimizer', 'platform')
STAGE2_SECTIONS = ('model', 'refine', 'platform')


class StageFunctions(NamedTuple):
  """A stage's module, optimizer, jitted train step and compiled initialiser."""
  model: Any                   # COSNet (stage 1) or the Refiner (stage 2)
  tx: optax.GradientTransformation
  train_step: Callable         # (state, batch) | (state, stage-1 vars, batch)
  init: Callable               # rng -> replicated initial state


def _sections(config, names) -> ml_collections.FrozenConfigDict:
  return ml_collections.FrozenConfigDict({k: config[k] for k in names})


def _compiled_init(create: Callable, mesh: Mesh) -> Callable:
  """`create` (rng -> state) jitted onto the mesh, replicated, compiled for init.

  Compiled with the backend's init options (compilation.init_compiler_options):
  the same values, without minutes of LLVM optimisation on CPU.
  """
  jitted = jax.jit(create, out_shardings=NamedSharding(mesh, P()))
  return models.compile_init(jitted, jax.random.PRNGKey(0))


@functools.lru_cache(maxsize=None)
def _stage1(cfg: ml_collections.FrozenConfigDict, num_steps: int, mesh: Mesh
            ) -> StageFunctions:
  form = formulation(cfg.platform, sharding.backend(mesh))
  model = models.build_cosnet(cfg.model, axis_name=sharding.AXIS, formulation=form)
  tx = state_lib.make_optimizer(cfg.optimizer, num_steps)
  create = lambda rng: state_lib.create_train_state(rng, model, cfg, (32, 32), num_steps, tx)
  return StageFunctions(model, tx, steps_lib.build_train_step(model, cfg, mesh),
                        _compiled_init(create, mesh))


@functools.lru_cache(maxsize=None)
def _stage2(cfg: ml_collections.FrozenConfigDict, num_steps: int, mesh: Mesh
            ) -> StageFunctions:
  form = formulation(cfg.platform, sharding.backend(mesh))
  model = models.build_cosnet(cfg.model, axis_name=sharding.AXIS, formulation=form)
  refiner = models.build_refiner(cfg.refine.model, axis_name=sharding.AXIS)
  tx = state_lib.make_optimizer(cfg.refine.optimizer, num_steps)
  create = lambda rng: state_lib.create_refine_state(rng, refiner, cfg, (32, 32),
                                                     num_steps, tx)
  return StageFunctions(refiner, tx, steps_lib.build_refine_step(model, refiner, cfg, mesh),
                        _compiled_init(create, mesh))


def stage1_functions(config, mesh: Mesh, num_steps: int) -> StageFunctions:
  """Stage 1 (COSNet + contrast) of `config` over `mesh`, a `num_steps` schedule."""
  return _stage1(_sections(config, STAGE1_SECTIONS), int(num_steps), mesh)


def stage2_functions(config, mesh: Mesh, num_steps: int) -> StageFunctions:
  """Stage 2 (refinement over the frozen stage 1) of `config`."""
  return _stage2(_sections(config, STAGE2_SECTIONS), int(num_steps), mesh)


@dataclasses.dataclass(frozen=True)
class Builders:
  """How train_and_evaluate gets each stage's functions: (config, mesh, num_steps) ->
  StageFunctions."""
  stage1: Callable[..., StageFunctions] = stage1_functions
  stage2: Callable[..., StageFunctions] = stage2_functions
