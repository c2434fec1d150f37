r"""The octa500_3m rows (CPU budget) on an accelerator without TFDS / clu / orbax.

  # one row, one seed (same config as `run.py octa500_3m --row e --seed 0`):
  python experiments/accel_run.py --data_root ../shared/data/OCTA500_3M --out runs/accel \
      --job e-s0:e:0
  # several jobs side by side on one GPU (each its own process), extra overrides:
  python experiments/accel_run.py --data_root D --out runs/accel --parallel 8 \
      --job a-s0:a:0 --job e-s0:e:0 --job lr1e3:e:0:optimizer.learning_rate=1e-3

Why: the lent GPU machines have jax / flax / optax / orbax but neither
tensorflow_datasets nor clu (whose writers import TensorFlow), so
`cosnet_jax.main` cannot run there. This script builds exactly the config of
`run.py` (configs/octa500_3m.py:cpu + run.BUDGET + run.ROWS[row] + overrides),
reads the flat {train,val,test}/{image,label} folders into the data layer's
SplitArrays, and runs the project's own TrainIterator, train / refine steps
and metrics: stage 1 with selection on val every train.eval_every steps,
then stage 2 (where refine.num_steps > 0) from the selected stage 1 with its
own selection on val, then the test split with the selected weights. Weights
are kept in host memory, not checkpointed.

A job is NAME:ROW:SEED[:k=v,k=v...]. Each job writes OUT/NAME/{metrics.json,
metrics_coarse.json (where there is a stage 2), metrics.md, history.jsonl,
run.json} in the layout of run.py's results (so summarize.py reads them).
Float32 convolutions and matmuls run at 'highest' precision by default (no
TF32), so a GPU run computes what the CPU run computes up to summation order.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


_FNS: dict = {}     # config key -> compiled functions (shared by the seeds of a row)
_SPLITS: dict = {}  # data key -> {split: SplitArrays}


def _module(name: str, path: pathlib.Path):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _coerce(value: str):
  """'1e-3' -> 1e-3, 'true' -> True, '(1,2)' -> (1, 2), else the string."""
  low = value.lower()
  if low in ('true', 'false'):
    return low == 'true'
  try:
    import ast  # pylint: disable=g-import-not-at-top
    return ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return value


def parse_job(text: str) -> dict:
  parts = text.split(':', 3)
  if len(parts) < 3:
    raise SystemExit(f'--job {text!r}: expected NAME:ROW:SEED[:k=v,...]')
  sets = {}
  if len(parts) == 4 and parts[3]:
    for item in parts[3].split(','):
      if '=' not in item:
        raise SystemExit(f'--job {text!r}: override {item!r} is not key=value')
      k, v = item.split('=', 1)
      sets[k] = v
  return {'name': parts[0], 'row': parts[1], 'seed': int(parts[2]), 'sets': sets}


def build_config(row: str, seed: int, sets: dict):
  """The config run.py would train for (row, seed, overrides)."""
  run = _module('run_experiment', ROOT / 'experiments' / 'run.py')
  cfg_mod = _module('octa500_3m_cfg', ROOT / 'configs' / 'octa500_3m.py')
  if row not in run.ROWS:
    raise SystemExit(f'row {row!r}: expected one of {sorted(run.ROWS)} (d is e\'s stage 1)')
  c = cfg_mod.get_config('cpu')
  overrides = {**run.BUDGET, **run.ROWS[row], 'seed': seed, **sets}
  for key, value in overrides.items():
    node = c
    *path, leaf = key.split('.')
    for p in path:
      node = node[p]
    if leaf not in node:
      raise SystemExit(f'override {key}: no such config field')
    old = node[leaf]
    value = _coerce(value) if isinstance(value, str) else value
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)
    node[leaf] = value
  return c, overrides


def run_job(job: dict, data_root: pathlib.Path, out: pathlib.Path, precision: str,
            workers: int, time_budget: float = 0.0) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  if precision:
    jax.config.update('jax_default_matmul_precision', precision)
  from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from cosnet_jax import models  # pylint: disable=g-import-not-at-top
  from cosnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from cosnet_jax.evaluation import metrics, report  # pylint: disable=g-import-not-at-top
  from cosnet_jax.train import state as state_lib, steps  # pylint: disable=g-import-not-at-top
  gpu = _module('gpu_paper', ROOT / 'experiments' / 'gpu_paper_octa500.py')

  t_start = time.time()
  c, overrides = build_config(job['row'], job['seed'], job['sets'])
  c.data.num_workers = workers
  out.mkdir(parents=True, exist_ok=True)
  dkey = json.dumps([str(data_root), c.data.to_dict()], sort_keys=True, default=str)
  if dkey not in _SPLITS:
    _SPLITS[dkey] = {s: gpu.read_split(data_root, s, c.data) for s in ('train', 'val', 'test')}
  splits = _SPLITS[dkey]
  round_up = lambda n: -(-n // c.data.pad_multiple) * c.data.pad_multiple
  eval_size = round_up(max(max(i.shape) for i in splits['train'].images))
  crop = int(c.data.crop_size)
  train_hw = (round_up(crop),) * 2 if crop > 0 else (eval_size, eval_size)
  n1, n2 = int(c.train.num_steps), max(int(c.refine.num_steps), 0)
  thr = c.eval.threshold
  mesh = steps.make_mesh()
  hist = open(out / 'history.jsonl', 'w')
  timing = {}
  # --time_budget: stage 1 must end by 70 % of it, stage 2 by 85 % (then the
  # test evaluation); 0 = no limit.
  deadline = lambda frac: t_start + frac * time_budget if time_budget > 0 else float('inf')

  def log(record):
    hist.write(json.dumps(record) + '\n')
    hist.flush()

  def score(probs, arrays, threshold):
    return [metrics.image_metrics(probs[i], arrays.labels[i] & 1, None, threshold=threshold)
            for i in range(len(arrays))]

  def predict(fn, variables, arrays, key):
    return gpu.predict(fn, variables, arrays, eval_size, 8, mesh, key)

  def train_stage(name, state, step_fn, num_steps, batch_size, seed, eval_fn, eval_vars, key,
                  deadline, validate_start=False):
    it = pipeline.TrainIterator(c.data, splits['train'], local_batch_size=batch_size,
                                seed=seed, start_step=0, process_index=0, out_hw=train_hw)
    best = {'score': -1.0, 'step': 0, 'vars': None}
    pending, t0, step = [], time.time(), 0

    def validate(step, state):
      variables = eval_vars(state)
      per = score(predict(eval_fn, variables, splits['val'], key), splits['val'], thr)
      rec = {f'val/{k}': float(np.mean([p[k] for p in per]))
             for k in ('dice', 'auc', 'sen', 'spe', 'cldice')}
      log({'stage': name, 'step': step, 'elapsed_s': time.time() - t0, **rec})
      sel = rec[f'val/{c.eval.select_metric}']
      print(f'[{job["name"]}] {name} step {step}: val dice {rec["val/dice"]:.4f}', flush=True)
      if sel > best['score']:
        best.update(score=sel, step=step, vars=jax.device_get(variables[-1]))

    if validate_start:
      # Stage 2 starts as the identity on the stage-1 map: let that compete
      # (refine.select_start, as in the main trainer).
      validate(0, state)
    while step < num_steps:
      state, m = step_fn(state, steps.shard_batch(next(it), mesh))
      step += 1
      pending.append(m)
      if time.time() > deadline and step < num_steps:
        # Out of the job's time: stop here, validate, and say so in run.json.
        timing[f'{name}_stopped_at_step'] = step
        num_steps = step
      if step == 1:
        jax.block_until_ready(m)
        timing[f'{name}_first_step_s'] = time.time() - t0
      if step % c.train.log_every == 0 or step == num_steps:
        ms = jax.device_get(pending)
        pending = []
        if any(x['finite'] < 1 for x in ms):
          raise SystemExit(f'[{job["name"]}] {name}: non-finite loss before step {step}')
        log({'stage': name, 'step': step, 'elapsed_s': time.time() - t0,
             **{k: float(np.mean([x[k] for x in ms])) for k in ms[-1] if k != 'finite'}})
      if step % c.train.eval_every == 0 or step == num_steps:
        validate(step, state)
    it.close()
    timing[f'{name}_s'] = time.time() - t0
    return best

  # The compiled functions depend on the config but not on the seed: jobs run
  # one after another in this process (--parallel 1) share them, so the seeds
  # of a row compile once.
  fkey = json.dumps([c.model.to_dict(), c.contrast.to_dict(), c.optimizer.to_dict(),
                     c.refine.to_dict(), n1, n2, train_hw], sort_keys=True, default=str)
  if fkey not in _FNS:
    model = models.build_cosnet(c.model, axis_name=steps.AXIS)
    tx = state_lib.make_optimizer(c.optimizer, n1)
    create = lambda r: state_lib.create_train_state(r, model, c, train_hw, n1, tx)
    fns = {'model': model,
           'init1': jax.jit(create, out_shardings=NamedSharding(mesh, P())),
           'train1': steps.build_train_step(model, c, mesh),
           'eval1': steps.build_eval_step(model, mesh)}
    if n2 > 0:
      refiner = models.build_refiner(c.refine.model, axis_name=steps.AXIS)
      tx2 = state_lib.make_optimizer(c.refine.optimizer, n2)
      create2 = lambda r: state_lib.create_refine_state(r, refiner, c, train_hw, n2, tx2)
      fns.update(init2=jax.jit(create2, out_shardings=NamedSharding(mesh, P())),
                 train2=steps.build_refine_step(model, refiner, c, mesh),
                 eval2=steps.build_refine_eval_step(model, refiner, mesh))
    _FNS[fkey] = fns
  fns = _FNS[fkey]

  # ---------------------------------------------------------------- stage 1
  state = models.init_fast(fns['init1'], jax.random.PRNGKey(c.seed))
  eval1 = fns['eval1']
  best1 = train_stage('stage1', state, fns['train1'], n1,
                      int(c.train.batch_size), c.seed, eval1,
                      lambda s: ({'params': s.params, 'batch_stats': s.batch_stats},),
                      'coarse', deadline(0.7))
  vars1 = steps.replicate(best1['vars'], mesh)
  test = splits['test']
  coarse_probs = predict(eval1, (vars1,), test, 'coarse')
  final_probs, coarse_per = coarse_probs, None
  best2 = None

  # ---------------------------------------------------------------- stage 2
  if n2 > 0:
    state2 = models.init_fast(fns['init2'], jax.random.PRNGKey(c.seed + 1))
    refine_fn, eval2 = fns['train2'], fns['eval2']
    best2 = train_stage('stage2', state2, lambda s, b: refine_fn(s, vars1, b), n2,
                        int(c.refine.batch_size), c.seed + 1, eval2,
                        lambda s: (vars1, {'params': s.params, 'batch_stats': s.batch_stats}),
                        'refined', deadline(0.85),
                        validate_start=bool(c.refine.get('select_start', True)))
    vars2 = steps.replicate(best2['vars'], mesh)
    final_probs = predict(eval2, (vars1, vars2), test, 'refined')
    coarse_per = score(coarse_probs, test, thr)

  per = [dict(id=test.ids[i], **m) for i, m in enumerate(score(final_probs, test, thr))]
  n = len(test)
  report.write_report(
      out, per, images=[x.astype(np.float32) / 255 for x in test.images],
      gts=[(x & 1).astype(np.float32) for x in test.labels],
      probs=[final_probs[i] for i in range(n)], ids=test.ids, threshold=thr,
      coarse=coarse_per,
      coarse_probs=None if coarse_per is None else [coarse_probs[i] for i in range(n)],
      overlays=False)
  at_half = score(final_probs, test, 0.5)
  info = {'experiment': 'octa500_3m', 'row': job['row'], 'seed': job['seed'],
          'name': job['name'], 'overrides': {k: str(v) for k, v in overrides.items()},
          'device': str(jax.devices()[0].device_kind), 'jax': jax.__version__,
          'matmul_precision': precision or 'default',
          'selected_step_stage1': best1['step'], 'val_stage1': best1['score'],
          'selected_step_stage2': best2 and best2['step'],
          'val_stage2': best2 and best2['score'],
          'test_dice_at_0.5': float(np.mean([m['dice'] for m in at_half])),
          **{k: round(v, 1) for k, v in timing.items()},
          'accel_total_s': round(time.time() - t_start, 1),
          'command': 'experiments/accel_run.py --job ' + job['text']}
  (out / 'run.json').write_text(json.dumps(info, indent=1) + '\n')
  summary = json.loads((out / 'metrics.json').read_text())['summary']
  print(f'[{job["name"]}] test dice {summary["dice"]["mean"]:.4f} '
        f'(val {info["val_stage2"] or info["val_stage1"]:.4f}) '
        f'in {info["accel_total_s"]} s', flush=True)
  return info


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--data_root', required=True)
  ap.add_argument('--out', required=True)
  ap.add_argument('--job', action='append', required=True,
                  help='NAME:ROW:SEED[:k=v,...] (repeatable)')
  ap.add_argument('--parallel', type=int, default=1,
                  help='jobs run side by side, one process each (1: in this process, in turn)')
  ap.add_argument('--precision', default='highest', help="'' = the backend's default")
  ap.add_argument('--workers', type=int, default=2)
  ap.add_argument('--time_budget', type=float, default=0.0,
                  help='seconds per job: training stops early to leave time for the '
                       'test evaluation (recorded in run.json); 0 = none')
  args = ap.parse_args(argv)
  out = pathlib.Path(args.out)
  jobs = [dict(parse_job(j), text=j) for j in args.job]
  if args.parallel <= 1:
    failed = []
    for j in jobs:
      try:
        run_job(j, pathlib.Path(args.data_root), out / j['name'], args.precision,
                args.workers, args.time_budget)
      except Exception as e:  # pylint: disable=broad-except
        # One job's failure (a bad override, a non-finite loss) keeps the others.
        print(f'[{j["name"]}] failed: {type(e).__name__}: {e}', flush=True)
        failed.append(j['name'])
    if failed:
      raise SystemExit(f'failed jobs: {failed}')
    return
  # --parallel N > 1: the jobs of one config (the seeds of a row) form a group,
  # run in turn by one process so that they share its compiled functions; at
  # most N groups run at a time, each process allowed a share of the device
  # memory (without it each would preallocate 75 % of the GPU and the second
  # would fail). Beware: compiles contend for the host's cores; 16 processes
  # on a 16-core H200 host spent 430 s compiling their first step (the
  # ResNeSt-50 step alone compiles in about 75 s there), so keep N small.
  env = dict(os.environ,
             XLA_PYTHON_CLIENT_MEM_FRACTION=f'{0.75 / max(args.parallel, 1):.3f}')
  groups: dict = {}
  for j in jobs:
    groups.setdefault((j['row'], json.dumps(j['sets'], sort_keys=True)), []).append(j)
  queue, running, failed = list(groups.values()), [], []
  while queue or running:
    while queue and len(running) < args.parallel:
      group = queue.pop(0)
      out.mkdir(parents=True, exist_ok=True)
      log_path = out / f'log-{group[0]["name"]}.txt'
      log = open(log_path, 'w')
      cmd = [sys.executable, __file__, '--data_root', args.data_root, '--out', str(out),
             '--precision', args.precision, '--workers', str(args.workers),
             '--time_budget', str(args.time_budget)]
      for j in group:
        cmd += ['--job', j['text']]
      proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
      running.append((group, proc, log, log_path))
    time.sleep(2)
    for item in list(running):
      group, proc, log, log_path = item
      if proc.poll() is not None:
        running.remove(item)
        log.close()
        names = [j['name'] for j in group]
        tail = log_path.read_text().splitlines()[-2:]
        print(f'{names}: exit {proc.returncode}: ' + ' | '.join(tail), flush=True)
        if proc.returncode:
          failed.append(names)
  if failed:
    raise SystemExit(f'failed groups: {failed} (see {out}/log-*.txt)')


if __name__ == '__main__':
  main()
