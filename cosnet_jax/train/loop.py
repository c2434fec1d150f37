"""train_and_evaluate: start-up checks, stage 1 (COSNet + contrast), stage 2 (refinement), report.

Start-up (`startup`), before anything is written to the workdir: the config's
values are checked; every dataset of the run is decoded and checked pair by
pair (all problems reported at once); each split the run needs is resolved
(a held-out validation split where the dataset has none; the final report on
val where there is no test split, logged); a config that would change the
shapes of a run already in the workdir is refused. Only then are
config.json (this run's config), config_history.jsonl and splits.json
written.

Each stage: restore the latest checkpoint of the workdir if any, run the
jitted data-parallel step, log (writer.py: TensorBoard events +
history.jsonl), validate on every dataset's validation split (never the test
split) and keep the best checkpoint by their mean score, keep the latest
checkpoints, and stop cleanly on SIGTERM / Ctrl-C, after
`train.max_steps_per_run` steps or `train.time_budget_s` seconds (a
checkpoint is saved first; the same command resumes) or on a non-finite loss
(the last good checkpoint is kept and the step is named).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import pathlib
import signal
import sys
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec as P

from cosnet_jax import checkpoints as ckpt_lib
from cosnet_jax import config as config_lib
from cosnet_jax import data as data_lib
from cosnet_jax import models, platform, sharding
from cosnet_jax.data import source as source_lib
from cosnet_jax.errors import ConfigError
from cosnet_jax.evaluation import evaluate_split, runner
from cosnet_jax.evaluation import steps as eval_steps
from cosnet_jax.evaluation import trained as trained_lib
from cosnet_jax.train import config_checks
from cosnet_jax.train import state as state_lib
from cosnet_jax.train import steps as steps_lib
from cosnet_jax.train import writer as writer_lib


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN/Inf loss; the message names the step."""


class RunSliceDone(Exception):
  """max_steps_per_run / time_budget_s reached; the state is checkpointed."""


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


# ------------------------------------------------------------------- start-up


@dataclasses.dataclass
class Plan:
  """What start-up decided: the datasets, their splits and the final report."""
  sources: list                 # [(key, data config)]
  val: dict                     # key -> val split expression (validated datasets only)
  final: list                   # [(key, data config, split)] reported at the end
  num_train: int                # training examples of the first dataset
  train_size: tuple
  splits: dict                  # key -> {split: [ids]} (written to splits.json)
  notes: list                   # what was decided, logged at the start


def startup(config: ml_collections.ConfigDict) -> Plan:
  """Checks the config and the data; decides the splits. Writes nothing.

  Raises:
    ConfigError / DataError naming the key, file or folder.
  """
  config_checks.check_config(config)
  sources = data_lib.sources(config.data)
  val, final, splits, notes, sizes = {}, [], {}, [], []
  for i, (key, cfg) in enumerate(sources):
    info = source_lib.dataset_info(cfg)     # decodes and checks every pair
    sizes.append(info['train_size'])
    n_train = source_lib.split_num_examples(cfg, cfg.train_split)
    if n_train == 0 and float(cfg.weight) > 0:
      raise ConfigError(f'{_field(i, key)}train_split={cfg.train_split!r}: no images')
    splits[key] = {'train': source_lib.split_ids(cfg, cfg.train_split)}
    views = source_lib.views(cfg)
    if cfg.val_split and source_lib.has_split(cfg, cfg.val_split):
      val[key] = cfg.val_split
      splits[key]['val'] = source_lib.split_ids(cfg, cfg.val_split)
      if views.held_out:
        notes.append(f'{key}: no {cfg.val_split!r} split; {len(splits[key]["val"])} training '
                     f'images held out for validation (data.holdout_fraction='
                     f'{cfg.holdout_fraction}, seed {cfg.holdout_seed})')
    elif cfg.val_split or i == 0:
      notes.append(f'{key}: no validation split ({cfg.val_split!r}): not validated')
    want = config.eval.final_split if i == 0 else cfg.test_split
    if not want:
      continue
    if source_lib.has_split(cfg, want):
      final.append((key, cfg, want))
    elif key in val and i == 0:
      final.append((key, cfg, val[key]))
      notes.append(f'{key}: no {want!r} split; the final report uses {val[key]!r} '
                   '(the split used for selection, so it is optimistic)')
    elif i == 0:
      notes.append(f'{key}: no {want!r} and no validation split; no final report')
    if final and final[-1][0] == key:
      splits[key]['final'] = source_lib.split_ids(cfg, final[-1][2])
  if not val:
    notes.append('no dataset has a validation split: no checkpoint selection, the last '
                 'checkpoint of each stage is used')
  if config.data.select_on != 'mean' and config.data.select_on not in val:
    raise ConfigError(f'config.data.select_on={config.data.select_on!r}: expected '
                      f"'mean' or a validated dataset key ({', '.join(val) or 'none'})")
  first = sources[0][1]
  return Plan(sources, val, final, source_lib.split_num_examples(first, first.train_split),
              tuple(max(s[d] for s in sizes) for d in range(2)), splits, notes)


def _field(i: int, key: str) -> str:
  return 'config.data.' if i == 0 else f'config.data.mix.{key}.'


def _write_run_files(config, workdir: pathlib.Path, plan: Plan) -> None:
  """config.json (this run's), config_history.jsonl (what changed), splits.json."""
  current = json.loads(config.to_json_best_effort())
  path = workdir / 'config.json'
  previous = json.loads(path.read_text()) if path.exists() else None
  changed = config_checks.config_diff(previous, current) if previous is not None else None
  entry = {'time': datetime.datetime.now().isoformat(timespec='seconds'),
           'argv': sys.argv, 'changed': changed if previous is not None else 'first start'}
  if previous is None or changed:
    with open(workdir / 'config_history.jsonl', 'a') as f:
      f.write(json.dumps(entry, default=str) + '\n')
  if changed:
    logging.warning('config differs from the run in this workdir (kept: no shape changes): %s',
                    '; '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in changed.items()))
  tmp = path.with_suffix('.tmp')
  tmp.write_text(json.dumps(current, indent=2, sort_keys=True))
  tmp.replace(path)
  (workdir / 'splits.json').write_text(json.dumps(plan.splits, indent=1) + '\n')


# ------------------------------------------------------------------- stages


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


def format_duration(seconds: float) -> str:
  """'HH:MM:SS', with days past 24 hours ('2d 03:04:05')."""
  seconds = max(int(round(seconds)), 0)
  days, rest = divmod(seconds, 86400)
  clock = time.strftime('%H:%M:%S', time.gmtime(rest))
  return f'{days}d {clock}' if days else clock


def eta_seconds(now: float, t_first: float | None, first_step: int, step: int,
                total: int) -> float | None:
  """Time left from the steps since `first_step` (after the compiling first step)."""
  if t_first is None or step <= first_step:
    return None
  return (now - t_first) / (step - first_step) * (total - step)


def _progress_line(stage, step, total, images_per_s, eta, scalars):
  parts = ' '.join(f'{k}={v:.4g}' for k, v in sorted(scalars.items())
                   if k in ('loss', 'seg_thick', 'seg_thin', 'contrast_thick',
                            'contrast_thin'))
  left = 'ETA --:--:--' if eta is None else f'ETA {format_duration(eta)}'
  return f'[{stage}] step {step}/{total} {parts} {images_per_s:.2f} img/s {left}'


class _Clock:
  """Wall time of this process's run, for train.time_budget_s."""

  def __init__(self, budget_s: float):
    self.start = time.time()
    self.budget = float(budget_s)

  def out_of_time(self) -> bool:
    return self.budget > 0 and time.time() - self.start >= self.budget


def _validate(stage: _Stage, state, config, plan: Plan, mesh, eval_bs: int) -> dict:
  """Validation scores of every validated dataset; 'score' is the selection value."""
  variables = stage.eval_vars(state)
  predict = lambda batch: stage.predict_fn(*variables, batch)
  summary, scores = {}, {}
  mixed = len(plan.val) > 1
  for key, cfg in plan.sources:
    if key not in plan.val:
      continue
    results = runner.predict_split(predict, cfg, plan.val[key], mesh, batch_size=eval_bs,
                                   outputs=(stage.select_output,))
    per_image = runner.score(results, stage.select_output, threshold=config.eval.threshold,
                             tolerance=int(config.eval.tolerance))
    prefix = f'val/{key}/' if mixed else 'val/'
    for k in ('dice', 'auc', 'acc', 'sen', 'spe', 'cldice'):
      summary[prefix + k] = runner.mean_metric(per_image, k)
    scores[key] = summary[prefix + config.eval.select_metric]
  if mixed:
    for k in ('dice', 'auc', 'acc', 'sen', 'spe', 'cldice'):
      summary[f'val/{k}'] = float(np.mean([summary[f'val/{key}/{k}'] for key in scores]))
  sel = config.data.select_on
  score = summary[f'val/{config.eval.select_metric}'] if sel == 'mean' else scores[sel]
  return {'summary': summary, 'score': score}


def _run_stage(stage: _Stage, config, plan: Plan, mesh, writer, clock: _Clock) -> Any:
  """The training loop shared by both stages. Returns the final state."""
  tcfg = config.train
  state = stage.state
  start_step = int(jax.device_get(state.step))
  if start_step >= stage.num_steps:
    logging.info('[%s] already trained (%d steps)', stage.name, start_step)
    return state
  best = stage.ckpt.best_score()
  best = -math.inf if best is None else best
  # The batches come from ONE global stream (process_count=1), so a step
  # sees the same examples whatever the number of processes; each process
  # builds only its own rows of it.
  pc, pi = jax.process_count(), jax.process_index()
  local = stage.batch_size // pc
  it = data_lib.make_train_iterator(
      config.data, global_batch_size=stage.batch_size,
      seed=config.seed + (0 if stage.name == 'stage1' else 1),
      start_step=start_step, process_index=0, process_count=1,
      rows=(pi * local, (pi + 1) * local))
  eval_bs = sharding.eval_batch_size(config.eval.batch_size)
  pending, t_log, step = [], time.time(), start_step
  t_first, first_step, log_images = None, start_step, 0

  def validate(step):
    nonlocal best
    if not plan.val:
      return
    out = _validate(stage, state, config, plan, mesh, eval_bs)
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
    while step < stage.num_steps:
      batch = sharding.shard_batch(next(it), mesh)
      state, metrics = stage.step_fn(state, batch)
      step += 1
      if t_first is None:    # the first step includes compilation: not in the ETA
        jax.block_until_ready(metrics)
        t_first, first_step = time.time(), step
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
        now = time.time()
        scalars['images_per_s'] = log_images / max(now - t_log, 1e-9)
        scalars['learning_rate'] = float(state_lib.learning_rate_schedule(
            stage_optimizer_cfg(config, stage.name), stage.num_steps)(step - 1))
        writer.write_scalars(stage.name, step, scalars)
        eta = eta_seconds(now, t_first, first_step, step, stage.num_steps)
        logging.info(_progress_line(stage.name, step, stage.num_steps,
                                    scalars['images_per_s'], eta, scalars))
        t_log, log_images = time.time(), 0
      if step % tcfg.eval_every == 0 or last:
        validate(step)
      if step % tcfg.checkpoint_every == 0 or last or STOP.requested:
        stage.ckpt.save_latest(step, state)
      if last:
        break
      if tcfg.max_steps_per_run > 0 and step - start_step >= tcfg.max_steps_per_run:
        stop_here(f'stopped after {tcfg.max_steps_per_run} steps of this run '
                  '(train.max_steps_per_run)', RunSliceDone)
      if clock.out_of_time():
        stop_here(f'stopped after {clock.budget:.0f} s (train.time_budget_s)', RunSliceDone)
      if STOP.requested:
        stop_here('stopped by a signal', KeyboardInterrupt)
  finally:
    it.close()
  writer.flush()
  return state


def stage_optimizer_cfg(config, stage_name):
  return config.optimizer if stage_name == 'stage1' else config.refine.optimizer


# Jitted functions are reused across train_and_evaluate calls in one process
# (tests, sweeps) when everything they close over is the same.
_COMPILED: dict = {}


def _cached(kind: str, key: tuple, build: Callable):
  k = (kind, json.dumps(key, sort_keys=True, default=str))
  if k not in _COMPILED:
    _COMPILED[k] = build()
  return _COMPILED[k]


def _init_state(create: Callable, rng, mesh, cache_key: tuple):
  """Builds a replicated state on every device, identically on every process.

  Compiled with the backend's init options (platform.init_compiler_options:
  LLVM optimisation off on CPU, where the ~200 RNG draws take minutes to
  optimise; same values) and kept for later runs in this process.
  """
  init = _cached('init', cache_key, lambda: models.compile_init(
      jax.jit(create, out_shardings=NamedSharding(mesh, P())), rng))
  return init(rng)


def _formulation(config, mesh):
  return platform.formulation(config.get('platform'), sharding.backend(mesh))


def _stage1_fns(config, mesh, num_steps):
  def build():
    model = models.build_cosnet(config.model, axis_name=sharding.AXIS,
                                formulation=_formulation(config, mesh))
    tx = state_lib.make_optimizer(config.optimizer, num_steps)
    return (model, tx, steps_lib.build_train_step(model, config, mesh),
            eval_steps.build_eval_step(model, mesh, config.get('platform')))
  key = (config.model.to_dict(), config.contrast.to_dict(), config.optimizer.to_dict(),
         config.platform.to_dict(), num_steps, [d.id for d in mesh.devices.flat])
  return _cached('stage1', key, build)


def _stage2_fns(config, mesh, num_steps, model):
  def build():
    refiner = models.build_refiner(config.refine.model, axis_name=sharding.AXIS)
    tx = state_lib.make_optimizer(config.refine.optimizer, num_steps)
    return (refiner, tx, steps_lib.build_refine_step(model, refiner, config, mesh),
            eval_steps.build_refine_eval_step(model, refiner, mesh, config.get('platform')))
  key = (config.model.to_dict(), config.refine.to_dict(), config.platform.to_dict(),
         num_steps, id(model), [d.id for d in mesh.devices.flat])
  return _cached('stage2', key, build)


def initial_stage1_state(config, mesh, num_steps: int, shape=(32, 32)):
  """The replicated initial stage-1 state of `config` (compiled init cached)."""
  model, tx, _, _ = _stage1_fns(config, mesh, num_steps)
  create = lambda rng: state_lib.create_train_state(rng, model, config, shape,
                                                    num_steps, tx)
  key = ('stage1', config.model.to_dict(), config.contrast.to_dict(),
         config.optimizer.to_dict(), config.platform.to_dict(), num_steps,
         [d.id for d in mesh.devices.flat])
  return _init_state(create, jax.random.PRNGKey(config.seed), mesh, key)


def build_stage1(config, workdir, mesh, plan: Plan):
  num_steps = num_train_steps(config.train, plan.num_train)
  model, _, train_fn, predict = _stage1_fns(config, mesh, num_steps)
  state = initial_stage1_state(config, mesh, num_steps, plan.train_size)
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
    state = state.replace(params=sharding.replicate(variables['params'], mesh),
                          batch_stats=sharding.replicate(variables['batch_stats'], mesh))
  if ckpt.latest_step() is None:
    # Weights loaded from elsewhere: the average starts from them, not from init.
    state = state_lib.restart_ema(state)
  return model, _Stage(
      name='stage1', num_steps=num_steps, batch_size=config.train.batch_size,
      state=state, step_fn=train_fn,
      eval_vars=lambda s: (stage1_variables(s),),
      predict_fn=predict, select_output='coarse', ckpt=ckpt)


def _init_from_run(state, run: str, mesh):
  """Stage-1 params and BN statistics from another run's best stage-1 checkpoint
  or a model file (e.g. synthetic pre-training); optimizer and bank start fresh."""
  try:
    trained = trained_lib.load(run)
  except (trained_lib.ModelFileError, FileNotFoundError) as e:
    raise ConfigError(f'config.model.init_from={run!r}: {e}') from None
  variables = trained.stage1
  for key in ('params', 'batch_stats'):
    want = jax.tree.map(lambda x: x.shape, getattr(state, key))  # no host copy
    got = jax.tree.map(lambda x: np.shape(x), variables[key])
    if want != got:
      raise ConfigError(
          f'config.model.init_from={run!r}: its {key} do not match this '
          'config.model (a different model size?)')
  logging.info('[stage1] initialised from %s', run)
  return state.replace(params=sharding.replicate(variables['params'], mesh),
                       batch_stats=sharding.replicate(variables['batch_stats'], mesh))


def stage1_variables(state) -> dict:
  """Inference variables of a stage-1 state (the parameter average if kept)."""
  return {'params': state_lib.inference_params(state), 'batch_stats': state.batch_stats}


def build_stage2(config, workdir, mesh, plan: Plan, model, stage1_vars):
  refine_train = ml_collections.ConfigDict({
      'num_steps': config.refine.num_steps, 'num_epochs': config.refine.num_epochs,
      'batch_size': config.refine.batch_size})
  num_steps = num_train_steps(refine_train, plan.num_train)
  if config.refine.num_steps == 0:
    num_steps = 0
  refiner, tx, step_fn, predict = _stage2_fns(config, mesh, max(num_steps, 1), model)
  create = lambda rng: state_lib.create_refine_state(rng, refiner, config, plan.train_size,
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


def _write_parameter_table(workdir: pathlib.Path, state, config) -> None:
  """workdir/params.txt (every parameter array) and one line on the console."""
  from cosnet_jax.models import summary  # pylint: disable=g-import-not-at-top
  params = jax.device_get(state.params)
  text, total = summary.parameter_table(params)
  (workdir / 'params.txt').write_text(text)
  logging.info('model %s: %.2f M parameters (%s/params.txt)', config.model.name,
               total / 1e6, workdir)


def final_reports(config, workdir: pathlib.Path, plan: Plan) -> list[dict]:
  """Evaluates the selected checkpoints on each final split (plan.final)."""
  trained = trained_lib.from_workdir(workdir, 'best', config=config)
  out = []
  for _, cfg, split in plan.final:
    tta = config.eval.get('tta', 'none')
    data_cfg = evaluate_split.dataset_config(trained, base=cfg)
    name = evaluate_split.report_name(data_cfg, split, tta)
    out.append(evaluate_split.evaluate(trained, data_cfg, split, workdir / 'eval' / name,
                                       tta=tta))
  return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains both stages in `workdir` (resuming what is there) and evaluates.

  Returns:
    {'stage1_step': selected stage-1 step, 'final': the first final report,
     'reports': every final report}.
  """
  clock = _Clock(config.train.get('time_budget_s', -1.0))
  workdir = pathlib.Path(workdir).absolute()
  plan = startup(config)
  if workdir.exists():
    config_checks.check_resume_compatible(config, workdir)
  for note in plan.notes:
    logging.warning('%s', note)
  workdir.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    _write_run_files(config, workdir, plan)
  mesh = sharding.make_mesh()
  writer = writer_lib.create(workdir, jax.process_index())
  writer.write_hparams({k: v for k, v in config_lib.flat_items(
      config.to_dict()).items() if isinstance(v, (int, float, str, bool))})
  STOP.install()
  try:
    model, stage1 = build_stage1(config, workdir, mesh, plan)
    if int(jax.device_get(stage1.state.step)) == 0 and jax.process_index() == 0:
      _write_parameter_table(workdir, stage1.state, config)
    s1_state = _run_stage(stage1, config, plan, mesh, writer, clock)
    # Stage 2 starts from the stage-1 checkpoint selected on validation.
    s1_sel, s1_step = stage1.ckpt.restore(s1_state, 'best')
    s1_vars = stage1_variables(s1_sel)
    logging.info('[stage2] uses stage-1 checkpoint of step %d', s1_step)
    del s1_state
    result = {'stage1_step': s1_step}
    if config.refine.num_steps != 0:
      stage2 = build_stage2(config, workdir, mesh, plan, model, s1_vars)
      _run_stage(stage2, config, plan, mesh, writer, clock)
  finally:
    STOP.uninstall()
    writer.flush()
  reports = final_reports(config, workdir, plan)
  result['reports'] = reports
  result['final'] = reports[0] if reports else None
  return result
