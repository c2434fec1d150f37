"""Eval-mode forward passes (stage 1, stage 1 + refinement), data-parallel and jitted.

Used by validation inside training and by evaluate_split; each returns the maps
of this device's slice of the batch, sharded over the mesh's 'data' axis.
"""
from __future__ import annotations

import functools

from jax.sharding import PartitionSpec as P

from cosnet_jax import sharding
from cosnet_jax.models.cosnet import frozen_maps


def eval_step(variables, batch, *, model):
  """Stage-1 inference on this device's slice: probabilities [b, h, w, 1]."""
  out = model.apply(variables, batch['image'], train=False, with_embeddings=False)
  return {'thick': out['thick'], 'thin': out['thin'], 'coarse': out['coarse']}


def refine_eval_step(stage1_vars, refine_vars, batch, *, model, refiner):
  """Stage 1 + refinement inference: coarse and refined maps [b, h, w, 1]."""
  thick, thin, coarse = frozen_maps(model, stage1_vars, batch['image'])
  refined = refiner.apply(refine_vars, batch['image'], thick, thin, train=False)
  return {'thick': thick, 'thin': thin, 'coarse': coarse, 'refined': refined}


def build_eval_step(model, mesh, platform_cfg):
  """jit(shard_map(eval_step)): (stage-1 variables, batch) -> maps."""
  fn = functools.partial(eval_step, model=model)
  return sharding.data_parallel(fn, mesh, (P(), P(sharding.AXIS)), P(sharding.AXIS),
                                mode='infer', platform_cfg=platform_cfg)


def build_refine_eval_step(model, refiner, mesh, platform_cfg):
  """jit(shard_map(refine_eval_step)): (stage-1 vars, refiner vars, batch) -> maps."""
  fn = functools.partial(refine_eval_step, model=model, refiner=refiner)
  return sharding.data_parallel(fn, mesh, (P(), P(), P(sharding.AXIS)), P(sharding.AXIS),
                                mode='infer', platform_cfg=platform_cfg)
