"""What training measures: validation scores for checkpoint selection, and the final reports.

The only training module that runs inference passes (cosnet_jax.inference)
and scores them (cosnet_jax.evaluation.metrics): the train steps, states and
the loop itself import neither. Validation never touches a test split.
"""
from __future__ import annotations

import functools
import pathlib

import ml_collections
import numpy as np
from jax.sharding import Mesh

from cosnet_jax import models, sharding
from cosnet_jax.evaluation import metrics as metrics_lib
from cosnet_jax.inference import evaluate_split, runner
from cosnet_jax.inference import steps as eval_steps
from cosnet_jax.inference import trained as trained_lib
from cosnet_jax.models.formulation import formulation


@functools.lru_cache(maxsize=None)
def _eval_step(cfg: ml_collections.FrozenConfigDict, mesh: Mesh, refined: bool):
  model = models.build_cosnet(cfg.model, axis_name=sharding.AXIS,
                              formulation=formulation(cfg.platform, sharding.backend(mesh)))
  if not refined:
    return eval_steps.build_eval_step(model, mesh, cfg.platform)
  refiner = models.build_refiner(cfg.refine.model, axis_name=sharding.AXIS)
  return eval_steps.build_refine_eval_step(model, refiner, mesh, cfg.platform)


def eval_step(config, mesh: Mesh, stage: str):
  """The jitted eval-mode pass of a stage: (*variables, batch) -> maps
  ('stage1': stage-1 variables; 'stage2': stage-1 and refiner variables)."""
  cfg = ml_collections.FrozenConfigDict(
      {k: config[k] for k in ('model', 'refine', 'platform')})
  return _eval_step(cfg, mesh, stage == 'stage2')


def validate(stage: str, variables: tuple, config, plan, mesh: Mesh) -> dict:
  """Validation scores of every validated dataset of `plan` (startup.Plan).

  Returns:
    {'summary': {'val/<metric>' or 'val/<key>/<metric>': mean}, 'score': the
     selection value (config.data.select_on: the mean over datasets or one key)}.
  """
  step = eval_step(config, mesh, stage)
  output = 'coarse' if stage == 'stage1' else 'refined'
  predict = lambda batch: step(*variables, batch)
  eval_bs = sharding.eval_batch_size(config.eval.batch_size)
  summary, scores = {}, {}
  mixed = len(plan.val) > 1
  for key, cfg in plan.sources:
    if key not in plan.val:
      continue
    results = runner.split_maps(predict, cfg, plan.val[key], mesh, batch_size=eval_bs,
                                outputs=(output,))
    per_image = runner.score(results, output, threshold=config.eval.threshold,
                             tolerance=int(config.eval.tolerance))
    prefix = f'val/{key}/' if mixed else 'val/'
    for k in metrics_lib.SUMMARY_METRICS:
      summary[prefix + k] = runner.mean_metric(per_image, k)
    scores[key] = summary[prefix + config.eval.select_metric]
  if mixed:
    for k in metrics_lib.SUMMARY_METRICS:
      summary[f'val/{k}'] = float(np.mean([summary[f'val/{key}/{k}'] for key in scores]))
  sel = config.data.select_on
  score = summary[f'val/{config.eval.select_metric}'] if sel == 'mean' else scores[sel]
  return {'summary': summary, 'score': score}


def final_reports(config, workdir: pathlib.Path, plan) -> list[dict]:
  """Evaluates the selected checkpoints on each final split (plan.final) into
  WORKDIR/eval/<dataset>-<split>[-tta_<mode>]/."""
  trained = trained_lib.from_workdir(workdir, 'best', config=config)
  out = []
  for _, cfg, split in plan.final:
    data_cfg = evaluate_split.dataset_config(trained, base=cfg)
    name = evaluate_split.report_name(data_cfg, split, config.eval.tta)
    out.append(evaluate_split.evaluate(trained, data_cfg, split, workdir / 'eval' / name,
                                       tta=config.eval.tta))
  return out
