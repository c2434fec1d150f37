"""train_and_evaluate: stage 1 (COSNet + contrast), stage 2 (refinement).

Each stage: restore the latest checkpoint of the workdir if any, run the
jitted data-parallel step, log through clu metric writers, validate on the
validation split (never the test split), keep the best (by validation Dice)
and the latest checkpoints, and stop cleanly on SIGTERM / Ctrl-C (a
checkpoint is saved first) or on a non-finite loss (the last good checkpoint
is kept and the step is named).
"""

import dataclasses
import json
import math
import pathlib
import signal
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, parameter_overview
from jax.sharding import NamedSharding, PartitionSpec as P

from cosnet_jax import data as data_lib
from cosnet_jax import models
from cosnet_jax.evaluation import runner
from cosnet_jax.evaluation import tta as tta_lib
from cosnet_jax.train import checkpoint as ckpt_lib
from cosnet_jax.train import config_checks
from cosnet_jax.train import state as state_lib
from cosnet_jax.train import steps as steps_lib


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN/Inf loss; the message names the step."""


class RunSliceDone(Exception):
  """train.max_steps_per_run steps were done; the state is checkpointed."""


def _append_history(workdir: pathlib.Path, stage: str, step: int, scalars: dict):
  """One JSON line per log/validation event: workdir/history.jsonl."""
  if jax.process_index() == 0:
    with open(workdir / 'history.jsonl', 'a') as f:
      f.write(json.dumps({'stage': stage, 'step': int(step),
                          **{k: float(v) for k, v in scalars.items()}}) + '\n')


class _StopFlag:
  """Set by SIGTERM / SIGINT; the loop checkpoints and returns."""

  def __init__(self):
    self.requested = False
    self._previous = {}

  def install(self):
    self.requested = False
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not in the main thread (e.g. some test runners)
        pass

  def uninstall(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    logging.warning('signal %d: saving a checkpoint and stopping', signum)
    self.requested = True


STOP = _StopFlag()


def num_train_steps(train_cfg, num_train_examples: int) -> int:
  """`num_steps` when set (> 0), else `num_epochs` over the training split."""
  if train_cfg.num_steps > 0:
    return int(train_cfg.num_steps)
  if train_cfg.num_epochs > 0:
    return int(math.ceil(train_cfg.num_epochs * num_train_examples /
                         train_cfg.batch_size))
  return 0


def input_shape(config, info) -> tuple[int, int]:
  """(h, w) of a training batch: the crop (or whole image) padded to 32."""
  del config
  return tuple(info['train_size'])


@dataclasses.dataclass
class _Stage:
  """What differs between the two stages for the shared loop."""
  name: str
  num_steps: int
  batch_size: int
  state: Any
  step_fn: Callable            # (state, batch) -> (state, metrics)
  eval_vars: Callable          # state -> variables tuple for predict_fn
  predict_fn: Callable         # (*vars, batch) -> maps
  select_output: str           # map scored on validation
  ckpt: ckpt_lib.StageCheckpoints
  validate_start: bool = False  # also validate (and may select) step 0


def _progress_line(stage, step, total, images_per_s, t_start, start_step, scalars):
  done = step - start_step
  eta = (time.time() - t_start) / max(done, 1) * (total - step)
  parts = ' '.join(f'{k}={v:.4g}' for k, v in sorted(scalars.items())
                   if k in ('loss', 'seg_thick', 'seg_thin', 'contrast_thick',
                            'contrast_thin'))
  return (f'[{stage}] step {step}/{total} {parts} '
          f'{images_per_s:.2f} img/s ETA {time.strftime("%H:%M:%S", time.gmtime(eta))}')


def _run_stage(stage: _Stage, config, mesh, writer, workdir) -> Any:
  """The training loop shared by both stages. Returns the final state."""
  tcfg = config.train
  state = stage.state
  start_step = int(jax.device_get(state.step))
  if start_step >= stage.num_steps:
    logging.info('[%s] already trained (%d steps)', stage.name, start_step)
    return state
  info = data_lib.dataset_info(config.data)
  has_val = data_lib.split_num_examples(config.data, config.data.val_split,
                                        missing_ok=True) > 0
  best = stage.ckpt.best_score()
  best = -math.inf if best is None else best
  # The batches come from ONE global stream (process_count=1), so a step
  # sees the same examples whatever the number of processes (the pipeline's
  # per-process shards would give other batch compositions); each process
  # builds only its own rows of it.
  pc, pi = jax.process_count(), jax.process_index()
  local = stage.batch_size // pc
  it = data_lib.make_train_iterator(
      config.data, global_batch_size=stage.batch_size,
      seed=config.seed + (0 if stage.name == 'stage1' else 1),
      start_step=start_step, process_index=0, process_count=1,
      rows=(pi * local, (pi + 1) * local))
  eval_bs = runner.eval_batch_size(config.eval.batch_size)
  pending, t_start, t_log, step = [], time.time(), time.time(), start_step
  log_images = 0

  def validate(step):
    nonlocal best
    if not has_val:
      return
    variables = stage.eval_vars(state)
    predict = lambda batch: stage.predict_fn(*variables, batch)
    results = runner.predict_split(predict, config.data, config.data.val_split,
                                   mesh, batch_size=eval_bs,
                                   outputs=(stage.select_output,))
    per_image = runner.score(results, stage.select_output,
                             threshold=config.eval.threshold)
    summary = {f'val/{k}': runner.mean_metric(per_image, k)
               for k in ('dice', 'auc', 'acc', 'sen', 'spe', 'cldice')}
    writer.write_scalars(step, summary)
    _append_history(workdir, stage.name, step, summary)
    score = summary[f'val/{config.eval.select_metric}']
    logging.info('[%s] step %d validation %s', stage.name, step,
                 ' '.join(f'{k}={v:.4f}' for k, v in summary.items()))
    if score > best:
      best = score
      stage.ckpt.save_best(step, state, score, config.eval.select_metric)

  if stage.validate_start and start_step == 0:
    validate(0)
  while step < stage.num_steps:
    batch = steps_lib.shard_batch(next(it), mesh)
    state, metrics = stage.step_fn(state, batch)
    step += 1
    pending.append(metrics)
    log_images += stage.batch_size
    last = step == stage.num_steps
    if step % tcfg.log_every == 0 or last or STOP.requested:
      fetched = jax.device_get(pending)
      pending = []
      for offset, m in enumerate(fetched):
        if m['finite'] < 1:
          bad = step - len(fetched) + offset + 1
          raise NonFiniteLossError(
              f'[{stage.name}] non-finite loss at step {bad}; training stopped. '
              f'The last good checkpoint is kept in {stage.ckpt.directory}; the '
              'state was not updated by that step. Lower the learning rate or '
              'check the input data.')
      scalars = {k: float(np.mean([m[k] for m in fetched]))
                 for k in fetched[-1] if k != 'finite'}
      dt = time.time() - t_log
      scalars['images_per_s'] = log_images / max(dt, 1e-9)
      if hasattr(state, 'opt_state'):
        scalars['learning_rate'] = float(state_lib.learning_rate_schedule(
            stage_optimizer_cfg(config, stage.name), stage.num_steps)(step - 1))
      writer.write_scalars(step, {f'{stage.name}/{k}': v for k, v in scalars.items()})
      _append_history(workdir, stage.name, step, scalars)
      logging.info(_progress_line(stage.name, step, stage.num_steps,
                                  scalars['images_per_s'], t_start, start_step,
                                  scalars))
      t_log, log_images = time.time(), 0
    if step % tcfg.eval_every == 0 or last:
      validate(step)
    if step % tcfg.checkpoint_every == 0 or last or STOP.requested:
      stage.ckpt.save_latest(step, state)
    if (tcfg.max_steps_per_run > 0 and step - start_step >= tcfg.max_steps_per_run
        and not last):
      # Time-sliced jobs: checkpoint and hand back; the next run resumes here.
      stage.ckpt.save_latest(step, state)
      writer.flush()
      raise RunSliceDone(f'[{stage.name}] stopped after {tcfg.max_steps_per_run} '
                         f'steps of this run (step {step}); run again to resume')
    if STOP.requested:
      writer.flush()
      raise KeyboardInterrupt(f'[{stage.name}] stopped at step {step}; '
                              f'checkpoint saved in {stage.ckpt.directory}')
  writer.flush()
  return state


def stage_optimizer_cfg(config, stage_name):
  return config.optimizer if stage_name == 'stage1' else config.refine.optimizer


def _init_state(create: Callable, rng, mesh, cache_key: tuple):
  """Builds a replicated state on every device, identically on every process.

  Compiled with LLVM optimisations off: the ~200 RNG draws of the init take
  minutes to optimise on CPU and run once (same values either way). The
  compiled init is kept for later runs in this process with the same
  `cache_key` (sweeps, tests).
  """
  init = _cached('init', cache_key, lambda: models.compile_fast(
      jax.jit(create, out_shardings=NamedSharding(mesh, P())), rng))
  return init(rng)


# Jitted functions are reused across train_and_evaluate calls in one process
# (tests, sweeps) when everything they close over is the same.
_COMPILED: dict = {}


def _cached(kind: str, key: tuple, build: Callable):
  k = (kind, json.dumps(key, sort_keys=True, default=str))
  if k not in _COMPILED:
    _COMPILED[k] = build()
  return _COMPILED[k]


def _stage1_fns(config, mesh, num_steps):
  def build():
    model = models.build_cosnet(config.model, axis_name=steps_lib.AXIS)
    tx = state_lib.make_optimizer(config.optimizer, num_steps)
    return (model, tx, steps_lib.build_train_step(model, config, mesh),
            steps_lib.build_eval_step(model, mesh))
  key = (config.model.to_dict(), config.contrast.to_dict(),
         config.optimizer.to_dict(), num_steps, [d.id for d in mesh.devices.flat])
  return _cached('stage1', key, build)


def _stage2_fns(config, mesh, num_steps, model):
  def build():
    refiner = models.build_refiner(config.refine.model, axis_name=steps_lib.AXIS)
    tx = state_lib.make_optimizer(config.refine.optimizer, num_steps)
    return (refiner, tx, steps_lib.build_refine_step(model, refiner, config, mesh),
            steps_lib.build_refine_eval_step(model, refiner, mesh))
  key = (config.model.to_dict(), config.refine.to_dict(), num_steps, id(model),
         [d.id for d in mesh.devices.flat])
  return _cached('stage2', key, build)


def initial_stage1_state(config, mesh, num_steps: int, shape=(32, 32)):
  """The replicated initial stage-1 state of `config` (compiled init cached)."""
  model, tx, _, _ = _stage1_fns(config, mesh, num_steps)
  create = lambda rng: state_lib.create_train_state(rng, model, config, shape,
                                                    num_steps, tx)
  key = ('stage1', config.model.to_dict(), config.contrast.to_dict(),
         config.optimizer.to_dict(), num_steps, [d.id for d in mesh.devices.flat])
  return _init_state(create, jax.random.PRNGKey(config.seed), mesh, key)


def build_stage1(config, workdir, mesh, info):
  shape = input_shape(config, info)
  num_train = data_lib.split_num_examples(config.data, config.data.train_split)
  num_steps = num_train_steps(config.train, num_train)
  model, _, train_fn, predict = _stage1_fns(config, mesh, num_steps)
  state = initial_stage1_state(config, mesh, num_steps, shape)
  ckpt = ckpt_lib.StageCheckpoints(workdir / 'checkpoints' / 'stage1')
  if ckpt.latest_step() is not None:
    state, step = ckpt.restore(state, 'latest')
    logging.info('[stage1] resumed from step %d', step)
  elif config.model.get('init_from', ''):
    state = _init_from_run(state, config.model.init_from, mesh)
  elif config.model.pretrained:
    variables = models.load_pretrained_resnest(
        {'params': jax.device_get(state.params),
         'batch_stats': jax.device_get(state.batch_stats)}, config.model.pretrained)
    state = state.replace(params=steps_lib.replicate(variables['params'], mesh),
                          batch_stats=steps_lib.replicate(variables['batch_stats'], mesh))
  if ckpt.latest_step() is None:
    # Weights loaded from elsewhere: the average starts from them, not from init.
    state = state_lib.restart_ema(state)
  return model, _Stage(
      name='stage1', num_steps=num_steps, batch_size=config.train.batch_size,
      state=state, step_fn=train_fn,
      eval_vars=lambda s: (stage1_variables(s),),
      predict_fn=predict, select_output='coarse', ckpt=ckpt)


def _init_from_run(state, run_dir: str, mesh):
  """Stage-1 params and BN statistics from the best stage-1 checkpoint of
  another run (e.g. synthetic pre-training); optimizer and memory bank start fresh."""
  from cosnet_jax.evaluation import inference  # pylint: disable=g-import-not-at-top
  try:
    variables, _, used = inference.load_variables(run_dir, 'best')
  except inference.CheckpointNotFoundError as e:
    raise config_checks.ConfigError(f'config.model.init_from={run_dir!r}: {e}') from None
  for key in ('params', 'batch_stats'):
    want = jax.tree.map(lambda x: x.shape, getattr(state, key))  # no host copy
    got = jax.tree.map(lambda x: x.shape, variables[key])
    if want != got:
      raise config_checks.ConfigError(
          f'config.model.init_from={run_dir!r}: its {key} do not match this '
          'config.model (a different model size?)')
  logging.info('[stage1] initialised from %s (stage-1 step %s)', run_dir, used['stage1'])
  return state.replace(params=steps_lib.replicate(variables['params'], mesh),
                       batch_stats=steps_lib.replicate(variables['batch_stats'], mesh))


def stage1_variables(state) -> dict:
  """Inference variables of a stage-1 state (the parameter average if kept)."""
  return {'params': state_lib.inference_params(state), 'batch_stats': state.batch_stats}


def build_stage2(config, workdir, mesh, info, model, stage1_vars):
  shape = input_shape(config, info)
  refine_train = ml_collections.ConfigDict({
      'num_steps': config.refine.num_steps, 'num_epochs': config.refine.num_epochs,
      'batch_size': config.refine.batch_size})
  num_train = data_lib.split_num_examples(config.data, config.data.train_split)
  num_steps = num_train_steps(refine_train, num_train)
  if config.refine.num_steps == 0:
    num_steps = 0
  refiner, tx, step_fn, predict = _stage2_fns(config, mesh, max(num_steps, 1), model)
  create = lambda rng: state_lib.create_refine_state(rng, refiner, config, shape,
                                                     max(num_steps, 1), tx)
  key = ('stage2', config.model.to_dict(), config.refine.to_dict(), max(num_steps, 1),
         id(model), [d.id for d in mesh.devices.flat])
  state = _init_state(create, jax.random.PRNGKey(config.seed + 1), mesh, key)
  ckpt = ckpt_lib.StageCheckpoints(workdir / 'checkpoints' / 'stage2')
  if ckpt.latest_step() is not None:
    state, step = ckpt.restore(state, 'latest')
    logging.info('[stage2] resumed from step %d', step)
  return _Stage(
      name='stage2', num_steps=num_steps, batch_size=config.refine.batch_size,
      state=state, step_fn=lambda s, b: step_fn(s, stage1_vars, b),
      eval_vars=lambda s: (stage1_vars, {'params': state_lib.inference_params(s),
                                         'batch_stats': s.batch_stats}),
      predict_fn=predict, select_output='refined', ckpt=ckpt,
      validate_start=bool(config.refine.get('select_start', True)))


def _check_batch(batch_size: int, what: str):
  n = jax.device_count()
  if batch_size <= 0 or batch_size % n:
    raise config_checks.ConfigError(
        f'{what}={batch_size} must be a positive multiple of the number of '
        f'devices ({n}: {jax.process_count()} process(es) x '
        f'{jax.local_device_count()} local device(s))')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains both stages in `workdir` (resuming what is there) and evaluates.

  Returns:
    dict with the final validation / test summaries that were computed.
  """
  workdir = pathlib.Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  _check_batch(config.train.batch_size, 'config.train.batch_size')
  _check_batch(config.refine.batch_size, 'config.refine.batch_size')
  if config.eval.get('tta', 'none') not in tta_lib.MODES:   # fail now, not after training
    raise config_checks.ConfigError(
        f'config.eval.tta={config.eval.tta!r}: expected one of {sorted(tta_lib.MODES)}')
  if jax.process_index() == 0:
    config_checks.check_resume_compatible(config, workdir)
  mesh = steps_lib.make_mesh()
  info = data_lib.dataset_info(config.data)
  writer = metric_writers.create_default_writer(
      str(workdir), just_logging=jax.process_index() > 0)
  writer.write_hparams({k: v for k, v in _flatten(config.to_dict()).items()
                        if isinstance(v, (int, float, str, bool))})
  STOP.install()
  try:
    model, stage1 = build_stage1(config, workdir, mesh, info)
    if int(jax.device_get(stage1.state.step)) == 0:
      logging.info('Stage-1 parameters:\n%s',
                   parameter_overview.get_parameter_overview(
                       jax.device_get(stage1.state.params)))
    s1_state = _run_stage(stage1, config, mesh, writer, workdir)
    # Stage 2 starts from the stage-1 checkpoint selected on validation.
    s1_sel, s1_step = stage1.ckpt.restore(s1_state, 'best')
    s1_vars = stage1_variables(s1_sel)
    logging.info('[stage2] uses stage-1 checkpoint of step %d', s1_step)
    del s1_state
    result = {'stage1_step': s1_step}
    if config.refine.num_steps != 0:
      stage2 = build_stage2(config, workdir, mesh, info, model, s1_vars)
      _run_stage(stage2, config, mesh, writer, workdir)
  finally:
    STOP.uninstall()
    writer.flush()
  if config.eval.final_split:
    from cosnet_jax import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
    result['final'] = evaluate_lib.run(workdir, split=config.eval.final_split,
                                       checkpoint='best')
  return result


def _flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out
