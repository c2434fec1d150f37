"""Predicts every image of a dataset split with a trained model and writes its report.

Used by `cosnet_jax.evaluate`, the final evaluation of a training run and
`cosnet_jax.cross_domain`. The images go through the model's preprocessing
(the data config is the dataset's, with the model's CLAHE settings and
spacing), in data-parallel batches over the local devices.
"""
from __future__ import annotations

import pathlib

import jax
import ml_collections
from absl import logging

from cosnet_jax import models, sharding
from cosnet_jax.data.datasets import known_spacing
from cosnet_jax.errors import ConfigError
from cosnet_jax.evaluation import metrics as metrics_lib
from cosnet_jax.evaluation import report
from cosnet_jax.inference import runner
from cosnet_jax.inference import steps as eval_steps
from cosnet_jax.inference import tta as tta_lib
from cosnet_jax.inference.trained import TrainedModel
from cosnet_jax.models.formulation import formulation

PREPROCESSING_FIELDS = ('clahe', 'clahe_clip_limit', 'clahe_tile_grid', 'pad_multiple',
                        'target_spacing_um')


def dataset_config(trained: TrainedModel, name: str | None = None, root: str | None = None,
                   spacing_um: float | None = None, base=None) -> ml_collections.ConfigDict:
  """The data config to evaluate `trained` on a dataset.

  `base` (default the model's training data config) gives the dataset
  fields; `name` / `root` / `spacing_um` replace them. The preprocessing and
  the model's spacing always come from the model. A dataset evaluated at its
  own spacing (known to the config, or given) is resampled to the model's.
  """
  d = ml_collections.ConfigDict((base if base is not None else trained.config.data).to_dict())
  with d.unlocked():
    d.mix = ml_collections.ConfigDict()
    if name:
      if name != d.name:   # another dataset: its splits as its files give them
        d.spacing_um = known_spacing(name)
        d.holdout_fraction = 0.0
      d.name = name
    if root is not None:
      d.root = root
    if spacing_um is not None:
      d.spacing_um = float(spacing_um)
    for f in PREPROCESSING_FIELDS:
      d[f] = trained.config.data[f]
    if not d.target_spacing_um and trained.spacing_um and d.spacing_um:
      d.target_spacing_um = trained.spacing_um
  return d


def model_maps(trained: TrainedModel, data_cfg, split: str, *, batch_size: int | None = None,
               tta: str | None = None, platform_cfg=None) -> dict:
  """Maps of every image of `split`.

  Returns:
    {'outputs': ('coarse',) or ('coarse', 'refined') (the last is the final
     output), 'tta': mode, 'results': runner.split_maps list}.
  """
  config = trained.config
  tta = tta if tta is not None else config.eval.tta
  tta_lib.check_mode(tta, 'tta')
  mesh = sharding.make_mesh(jax.local_devices())
  platform_cfg = platform_cfg if platform_cfg is not None else config.platform
  form = formulation(platform_cfg, sharding.backend(mesh))
  model = models.build_cosnet(config.model, axis_name=sharding.AXIS, formulation=form)
  s1 = sharding.replicate(trained.stage1, mesh)
  if trained.stage2 is not None:
    refiner = models.build_refiner(config.refine.model, axis_name=sharding.AXIS)
    step = eval_steps.build_refine_eval_step(model, refiner, mesh, platform_cfg)
    s2 = sharding.replicate(trained.stage2, mesh)
    fn = lambda batch: step(s1, s2, batch)
    outputs = ('coarse', 'refined')
  else:
    step = eval_steps.build_eval_step(model, mesh, platform_cfg)
    fn = lambda batch: step(s1, batch)
    outputs = ('coarse',)
  bs = sharding.eval_batch_size(batch_size or config.eval.batch_size)
  results = runner.split_maps(fn, data_cfg, split, mesh, batch_size=bs,
                                 outputs=outputs, tta=tta)
  if not results:
    raise ConfigError(f'split {split!r} of dataset {data_cfg.name!r} has no images')
  return {'outputs': outputs, 'tta': tta, 'results': results}


def parse_threshold(value):
  """'otsu' or a float in (0, 1) (ConfigError otherwise)."""
  if value is None or value == 'otsu':
    return 'otsu'
  try:
    t = float(value)
  except (TypeError, ValueError):
    raise ConfigError(f"threshold {value!r}: expected 'otsu' or a number in (0, 1)") from None
  if not 0.0 < t < 1.0:
    raise ConfigError(f'threshold {value}: expected a value in (0, 1)')
  return t


def evaluate(trained: TrainedModel, data_cfg, split: str, out_dir: str | pathlib.Path, *,
             threshold=None, batch_size: int | None = None, overlays: bool = True,
             tta: str | None = None, tolerance: int | None = None) -> dict:
  """Predicts `split`, scores it and writes the report into `out_dir`.

  Returns:
    {'refined': summary, 'coarse': summary, 'out_dir': path, 'text': markdown,
     'tta': mode, 'images': n, 'name': '<dataset>-<split>'}.
  """
  pred = model_maps(trained, data_cfg, split, batch_size=batch_size, tta=tta)
  config = trained.config
  thr = parse_threshold(threshold if threshold is not None else config.eval.threshold)
  tol = int(config.eval.tolerance if tolerance is None else tolerance)
  outputs, results = pred['outputs'], pred['results']
  final = outputs[-1]
  per = {o: [dict(id=r['id'], **metrics_lib.image_metrics(
      r[o], r['mask'], None, threshold=thr, tolerance=tol)) for r in results]
         for o in outputs}
  out = pathlib.Path(out_dir)
  summaries = report.write_report(
      out, per[final], images=[r['image'] for r in results],
      gts=[r['mask'] for r in results], probs=[r[final] for r in results],
      ids=[r['id'] for r in results],
      coarse=per['coarse'] if final != 'coarse' else None,
      coarse_probs=[r['coarse'] for r in results] if final != 'coarse' else None,
      threshold=thr, tolerance=tol, overlays=overlays, label=final)
  name = f"{data_cfg.name.replace('/', '_')}-{split}"
  text = (out / 'metrics.md').read_text()
  logging.info('evaluation of %s on %s written to %s', trained.source, name, out)
  return {'refined': summaries.get('refined'), 'coarse': summaries.get('coarse'),
          'out_dir': str(out), 'text': f'{name} ({len(results)} images)\n{text}',
          'tta': pred['tta'], 'images': len(results), 'name': name,
          'per_image': per[final]}


def report_name(data_cfg, split: str, tta: str) -> str:
  """'<dataset>-<split>[-tta_<mode>]': the report folder under WORKDIR/eval/."""
  name = f"{data_cfg.name.replace('/', '_')}-{split}"
  return name + (f'-tta_{tta}' if tta and tta != 'none' else '')
