"""train_and_evaluate: stage 1 (COSNet + contrast), stage 2 (refinement), final report.

The run, top to bottom:
  1. start-up (startup.py): config and data checked, splits decided; then
     the run files are written;
  2. each stage: build its state (compiled.py), restore the workdir's latest
     checkpoint if any, then the loop: one jitted data-parallel step per
     batch, progress lines and scalars every `log_every` steps, validation
     (validation.py: every dataset's val split, never a test split) and the
     best checkpoint every `eval_every`, the latest every `checkpoint_every`;
  3. stage 2 trains the refiner over the stage-1 checkpoint selected on
     validation;
  4. the final report of the selected checkpoints (validation.final_reports).
A run stops early, checkpointed, on SIGTERM / Ctrl-C, after
`train.max_steps_per_run` steps or `train.time_budget_s` seconds (the same
command resumes, bit-identically) and on a non-finite loss (the last good
checkpoint is kept, the step named): interrupts.py.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging

from cosnet_jax import checkpoints as ckpt_lib
from cosnet_jax import config as config_lib
from cosnet_jax import models, places, sharding
from cosnet_jax.data import pipeline
from cosnet_jax.errors import ConfigError
from cosnet_jax.inference import trained as trained_lib
from cosnet_jax.models import summary
from cosnet_jax.train import compiled, config_checks, progress, startup, validation, workdir_lock
from cosnet_jax.train import state as state_lib
from cosnet_jax.train import writer as writer_lib
from cosnet_jax.train.interrupts import STOP, Clock, NonFiniteLossError, RunSliceDone

__all__ = ['train_and_evaluate', 'NonFiniteLossError', 'RunSliceDone']


@dataclasses.dataclass
class Stage:
  """One training stage as the loop runs it."""
  name: str                    # 'stage1' | 'stage2'
  num_steps: int
  batch_size: int
  optimizer: ml_collections.ConfigDict
  state: Any
  step_fn: Callable            # (state, batch) -> (state, metrics)
  eval_vars: Callable          # state -> the variables of validation.validate
  ckpt: ckpt_lib.StageCheckpoints
  validate_start: bool = False  # also validate (and may select) step 0


def stage1_variables(state) -> dict:
  """Inference variables of a stage-1 state (the parameter average if kept)."""
  return {'params': state_lib.inference_params(state), 'batch_stats': state.batch_stats}


def build_stage1(config, workdir: pathlib.Path, mesh, plan: startup.Plan,
                 builders: compiled.Builders = compiled.Builders()) -> tuple[Any, Stage]:
  """The stage-1 model and Stage: restored from the workdir, else initialised
  (from `model.init_from` or `model.pretrained` where set)."""
  num_steps = startup.num_train_steps(config.train.num_steps, config.train.num_epochs,
                                      config.train.batch_size, plan.num_train)
  fns = builders.stage1(config, mesh, num_steps)
  state = fns.init(jax.random.PRNGKey(config.seed))
  ckpt = ckpt_lib.StageCheckpoints(workdir / 'checkpoints' / 'stage1')
  if ckpt.latest_step() is not None:
    state, step = ckpt.restore(state, 'latest')
    logging.info('[stage1] resumed from step %d', step)
  else:
    if config.model.init_from:
      state = _init_from_run(state, config.model.init_from, mesh)
    elif config.model.pretrained:
      variables = models.load_pretrained_resnest(
          {'params': jax.device_get(state.params),
           'batch_stats': jax.device_get(state.batch_stats)}, config.model.pretrained)
      state = state.replace(params=sharding.replicate(variables['params'], mesh),
                            batch_stats=sharding.replicate(variables['batch_stats'], mesh))
    # Weights loaded from elsewhere: the average starts from them, not from init.
    state = state_lib.restart_ema(state)
  return fns.model, Stage(
      name='stage1', num_steps=num_steps, batch_size=config.train.batch_size,
      optimizer=config.optimizer, state=state, step_fn=fns.train_step,
      eval_vars=lambda s: (stage1_variables(s),), ckpt=ckpt)


def _init_from_run(state, run: str, mesh):
  """Stage-1 params and BN statistics from another run's best stage-1 checkpoint
  or a model file (e.g. synthetic pre-training); optimizer and bank start fresh."""
  try:
    variables = trained_lib.load(run).stage1
  except (trained_lib.ModelFileError, FileNotFoundError) as e:
    raise ConfigError(f'config.model.init_from={run!r}: {e}') from None
  for key in ('params', 'batch_stats'):
    want = jax.tree.map(lambda x: x.shape, getattr(state, key))  # no host copy
    got = jax.tree.map(np.shape, variables[key])
    if want != got:
      raise ConfigError(f'config.model.init_from={run!r}: its {key} do not match this '
                        'config.model (a different model size?)')
  logging.info('[stage1] initialised from %s', run)
  return state.replace(params=sharding.replicate(variables['params'], mesh),
                       batch_stats=sharding.replicate(variables['batch_stats'], mesh))


def build_stage2(config, workdir: pathlib.Path, mesh, plan: startup.Plan, stage1_vars,
                 builders: compiled.Builders = compiled.Builders()) -> Stage:
  """The refinement Stage over the frozen `stage1_vars`."""
  num_steps = (0 if config.refine.num_steps == 0 else startup.num_train_steps(
      config.refine.num_steps, config.refine.num_epochs, config.refine.batch_size,
      plan.num_train))
  fns = builders.stage2(config, mesh, max(num_steps, 1))
  state = fns.init(jax.random.PRNGKey(config.seed + 1))
  ckpt = ckpt_lib.StageCheckpoints(workdir / 'checkpoints' / 'stage2')
  if ckpt.latest_step() is not None:
    state, step = ckpt.restore(state, 'latest')
    logging.info('[stage2] resumed from step %d', step)
  return Stage(
      name='stage2', num_steps=num_steps, batch_size=config.refine.batch_size,
      optimizer=config.refine.optimizer, state=state,
      step_fn=lambda s, b: fns.train_step(s, stage1_vars, b),
      eval_vars=lambda s: (stage1_vars, {'params': state_lib.inference_params(s),
                                         'batch_stats': s.batch_stats}),
      ckpt=ckpt, validate_start=config.refine.select_start)


def run_stage(stage: Stage, config, plan: startup.Plan, mesh, writer, clock: Clock):
  """The training loop of one stage. Returns its final state."""
  tcfg = config.train
  state = stage.state
  start_step = int(jax.device_get(state.step))
  if start_step >= stage.num_steps:
    logging.info('[%s] already trained (%d steps)', stage.name, start_step)
    return state
  best = stage.ckpt.best_score()
  best = -math.inf if best is None else best
  # One global batch stream (process_count=1), so a step sees the same
  # examples whatever the number of processes; each builds its own rows.
  local = stage.batch_size // jax.process_count()
  rows = (jax.process_index() * local, (jax.process_index() + 1) * local)
  it = pipeline.make_train_iterator(
      config.data, global_batch_size=stage.batch_size,
      seed=config.seed + (0 if stage.name == 'stage1' else 1),
      start_step=start_step, process_index=0, process_count=1, rows=rows)
  lr = state_lib.learning_rate_schedule(stage.optimizer, stage.num_steps)
  pending, t_log, step = [], time.time(), start_step
  t_first, first_step, log_images = None, start_step, 0

  def validate(step):
    nonlocal best
    if not plan.val:
      return
    out = validation.validate(stage.name, stage.eval_vars(state), config, plan, mesh)
    writer.write_scalars(stage.name, step, out['summary'])
    logging.info('[%s] step %d validation %s', stage.name, step,
                 ' '.join(f'{k}={v:.4f}' for k, v in out['summary'].items()))
    if out['score'] > best:
      best = out['score']
      stage.ckpt.save_best(step, state, best, config.eval.select_metric)

  def stop_here(reason: str, exc):
    stage.ckpt.save_latest(step, state)
    writer.flush()
    raise exc(f'[{stage.name}] {reason} (step {step}); checkpoint saved in '
              f'{stage.ckpt.directory}; run the same command again to resume')

  if stage.validate_start and start_step == 0:
    validate(0)
  try:
    if STOP.requested:
      stop_here(f'stopped by {STOP.signal_name}', KeyboardInterrupt)
    while step < stage.num_steps:
      batch = sharding.shard_batch(next(it), mesh)
      if t_first is None:
        logging.info('[%s] compiling the train step (the first step)', stage.name)
        t_compile = time.time()
      state, metrics = stage.step_fn(state, batch)
      step += 1
      if t_first is None:    # the first step includes compilation: not in the ETA
        jax.block_until_ready(metrics)
        t_first, first_step = time.time(), step
        logging.info('[%s] compiled and ran the first step in %.1f s', stage.name,
                     t_first - t_compile)
      pending.append(metrics)
      log_images += stage.batch_size
      last = step == stage.num_steps
      if step % tcfg.log_every == 0 or last or STOP.requested:
        fetched, pending = jax.device_get(pending), []
        for offset, m in enumerate(fetched):
          if m['finite'] < 1:
            raise NonFiniteLossError(
                f'[{stage.name}] non-finite loss at step {step - len(fetched) + offset + 1}; '
                f'training stopped. The last good checkpoint is kept in '
                f'{stage.ckpt.directory}; the state was not updated by that step. Lower '
                'the learning rate or check the input data.')
        scalars = {k: float(np.mean([m[k] for m in fetched]))
                   for k in fetched[-1] if k != 'finite'}
        now = time.time()
        scalars['images_per_s'] = log_images / max(now - t_log, 1e-9)
        scalars['learning_rate'] = float(lr(step - 1))
        writer.write_scalars(stage.name, step, scalars)
        eta = progress.eta_seconds(now, t_first, first_step, step, stage.num_steps)
        logging.info(progress.progress_line(stage.name, step, stage.num_steps,
                                            scalars['images_per_s'], eta, scalars))
        t_log, log_images = time.time(), 0
      if step % tcfg.eval_every == 0 or last:
        validate(step)
      if step % tcfg.checkpoint_every == 0 or last or STOP.requested:
        stage.ckpt.save_latest(step, state)
      if STOP.requested:     # before `last`: a signal in the last step stops too
        stop_here(f'stopped by {STOP.signal_name}', KeyboardInterrupt)
      if last:
        break
      if tcfg.max_steps_per_run > 0 and step - start_step >= tcfg.max_steps_per_run:
        stop_here(f'stopped after {tcfg.max_steps_per_run} steps of this run '
                  '(train.max_steps_per_run)', RunSliceDone)
      if clock.out_of_time():
        stop_here(f'stopped after {clock.budget:.0f} s (train.time_budget_s)', RunSliceDone)
  finally:
    it.close()
  writer.flush()
  return state


def _write_parameter_table(workdir: pathlib.Path, state, config) -> None:
  """workdir/params.txt (every parameter array) and one line on the console."""
  text, total = summary.parameter_table(jax.device_get(state.params))
  (workdir / 'params.txt').write_text(text)
  logging.info('model %s: %.2f M parameters (%s/params.txt)', config.model.name,
               total / 1e6, workdir)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       builders: compiled.Builders = compiled.Builders()) -> dict:
  """Trains both stages in `workdir` (resuming what is there) and evaluates.

  Returns:
    {'stage1_step': selected stage-1 step, 'final': the first final report,
     'reports': every final report}.
  """
  clock = Clock(config.train.time_budget_s)
  # Where the run writes, checked before the data are decoded (nothing written yet).
  workdir = places.writable_folder(workdir, 'workdir')
  if workdir.exists():
    if jax.process_index() == 0:   # the primary's lock (the others start beside it)
      workdir_lock.check_free(workdir)
    config_checks.check_resume_compatible(config, workdir)
  plan = startup.plan(config)
  for note in plan.notes:
    logging.warning('%s', note)
  workdir.mkdir(parents=True, exist_ok=True)
  lock = workdir_lock.WorkdirLock(workdir)
  lock.acquire()
  try:
    places.warn_if_little_space(workdir)
    return _train_and_evaluate(config, workdir, plan, builders, clock)
  finally:
    lock.release()


def _train_and_evaluate(config, workdir: pathlib.Path, plan: startup.Plan,
                        builders: compiled.Builders, clock: Clock) -> dict:
  """train_and_evaluate once the workdir is checked and held."""
  if jax.process_index() == 0:
    startup.write_run_files(config, workdir, plan)
  mesh = sharding.make_mesh()
  writer = writer_lib.create(workdir, jax.process_index())
  writer.write_hparams({k: v for k, v in config_lib.flat_items(config.to_dict()).items()
                        if isinstance(v, (int, float, str, bool))})
  STOP.install()
  try:
    _, stage1 = build_stage1(config, workdir, mesh, plan, builders)
    if int(jax.device_get(stage1.state.step)) == 0 and jax.process_index() == 0:
      _write_parameter_table(workdir, stage1.state, config)
    s1_state = run_stage(stage1, config, plan, mesh, writer, clock)
    # Stage 2 starts from the stage-1 checkpoint selected on validation.
    s1_selected, s1_step = stage1.ckpt.restore(s1_state, 'best')
    s1_vars = stage1_variables(s1_selected)
    del s1_state
    result = {'stage1_step': s1_step}
    if config.refine.num_steps != 0:
      logging.info('[stage2] uses stage-1 checkpoint of step %d', s1_step)
      stage2 = build_stage2(config, workdir, mesh, plan, s1_vars, builders)
      run_stage(stage2, config, plan, mesh, writer, clock)
    # A signal during the final report stops it at once; the checkpoints are complete.
    with STOP.immediate('the final evaluation; the training is complete: run the same '
                        'command again to write the report'):
      reports = validation.final_reports(config, workdir, plan)
  finally:
    STOP.uninstall()
    writer.close()
  result['reports'] = reports
  result['final'] = reports[0] if reports else None
  return result
