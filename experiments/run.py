r"""One command per experiment: train, evaluate on the held-out split, collect results.

  python experiments/run.py octa500_3m --row e --seed 0
  python experiments/run.py octa500_3m --row a --seed 1
  python experiments/run.py rossa
  python experiments/run.py synthetic_to_real --part zero_shot
  python experiments/run.py synthetic_to_real --part finetune
  python experiments/summarize.py        # tables -> experiments/results/*/README tables

Each run calls `python -m cosnet_jax.main` (training: stage 1, stage 2 where the
row has one, then `cosnet_jax.evaluate` on the held-out split with the checkpoint
selected on validation) with the overrides printed at the start, in
`--runs_dir/<name>/<row>-s<seed>` (checkpoints stay there, outside git), and
copies the small results to `experiments/results/<name>/<row>-s<seed>/`:
metrics.json (final output), metrics_coarse.json (stage-1 output, where
there is a stage 2), metrics.md, roc.png, a few overlays, config.json,
history.jsonl and run.json (command, wall time, hardware).

All octa500_3m rows share one budget: `configs/octa500_3m.py:cpu` plus BUDGET
below (the small COSNet on crops; stage 1 and stage 2 step counts fixed).
Rows (the ablation of the issue):
  a  two-branch network, segmentation loss only
  b  + pixel contrast within the batch (no memory bank)
  c  + memory bank frozen at its random init (the authors' released behaviour)
  d  + memory bank updated (the method)          = stage-1 output of row e
  e  (d) + refinement stage
  f  (e) without CLAHE
Row d is not trained separately: row e's stage 1 IS row d (same config and
seed), and its metrics_coarse.json is row d's result.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'experiments' / 'results'
DEFAULT_OCTA500 = str((ROOT / '..' / 'shared' / 'data' / 'OCTA500_3M').resolve())
DEFAULT_ROSSA = str((ROOT / '..' / 'shared' / 'data' / 'ROSSA').resolve())
OCTA500_NAME = 'octa500/3m_ilm_opl_largevessel'

# The common CPU budget of every octa500_3m row (on top of configs/*.py:cpu):
# about 32 minutes of 2-core CPU for row e (measured), inside the issue's 45 (stage 1 at
# ~1.1 s a step, stage 2 at ~0.9 s, validation every 150 steps, compiles and
# the test evaluation). Row (a) has no contrast term, so its steps are
# cheaper: the budget is equal in steps. The segmentation loss is BCE + Dice
# at lr 1e-3, not the authors' MSE at 3e-4: checked against it on the val
# split only (experiments/README.md, "How this recipe was chosen"), the same
# for every row.
BUDGET = {
    'train.num_steps': 1500,
    'refine.num_steps': 300,
    'train.eval_every': 150,
    'train.checkpoint_every': 150,
    'train.log_every': 50,
    'data.crop_size': 96,
    'train.batch_size': 8,
    'refine.batch_size': 8,
    'contrast.seg_loss': 'bce_dice',
    'optimizer.learning_rate': 1e-3,
}

NO_REFINE = {'refine.num_steps': 0}
ROWS = {
    'a': {'contrast.weight': 0.0, **NO_REFINE},
    'b': {'contrast.use_memory': False, 'contrast.in_batch': True, **NO_REFINE},
    'c': {'contrast.freeze_memory_bank': True, **NO_REFINE},
    'e': {},
    'f': {'data.clahe': False},
}
ROW_HELP = {
    'a': 'segmentation loss only', 'b': '+ in-batch pixel contrast',
    'c': '+ frozen memory bank (authors\' code)', 'd': '+ updated memory bank (method)',
    'e': '(d) + refinement', 'f': '(e) without CLAHE',
}
OVERLAYS_KEPT = 4


def _cpu_name() -> str:
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown'


def _cpu_isa() -> str:
  """Widest x86 vector extension of this CPU ('avx512f', 'avx2', ...; '' if unknown).

  Two machines both named 'AMD EPYC' ran this project's budget at 8.4 and 25
  images/s: XLA's float32 dot ran at 104 and 215 GFLOP/s on them.
  """
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('flags'):
        flags = set(line.split(':', 1)[1].split())
        return next((f for f in ('avx512f', 'avx2', 'avx', 'sse4_2') if f in flags), '')
  except OSError:
    pass
  return ''


def _hardware() -> dict:
  import importlib.util  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  # benchmark.py sits beside this file; load it by path so that importing run.py
  # as a module (tests) works as well as running it as a script.
  spec = importlib.util.spec_from_file_location(
      'cosnet_experiments_benchmark', pathlib.Path(__file__).with_name('benchmark.py'))
  benchmark = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(benchmark)
  return {'cpu': _cpu_name(), 'cpu_isa': _cpu_isa(), 'cpu_count': os.cpu_count(),
          # The machine's speed, measured after the run (comparable wall times).
          'matmul_gflops': round(benchmark.matmul_gflops(jax.default_backend(), 3), 1),
          # Cores this run may use (taskset / cgroup pinning), not the machine's.
          'cpus_usable': len(os.sched_getaffinity(0)),
          'jax_backend': jax.default_backend(),
          'devices': [str(d) for d in jax.devices()],
          'xla_flags': os.environ.get('XLA_FLAGS', ''), 'jax': jax.__version__,
          # glibc huge pages for XLA's buffers in the training process
          # (cosnet_jax/hugepages.py): 17-25 % on the CPU step time.
          'glibc_hugepages': benchmark.hugepages.in_effect()}


def _run(cmd: list[str], log: pathlib.Path) -> float:
  """Runs `cmd` from the project root, teeing output to `log`; returns seconds."""
  print('$ ' + ' '.join(cmd), flush=True)
  t0 = time.time()
  log.parent.mkdir(parents=True, exist_ok=True)
  with open(log, 'a') as f:
    f.write('$ ' + ' '.join(cmd) + '\n')
    f.flush()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
      sys.stdout.write(line)
      f.write(line)
    rc = proc.wait()
  if rc != 0:
    raise SystemExit(f'command failed with exit status {rc} (log: {log})')
  return time.time() - t0


def _train_cmd(config: str, workdir: pathlib.Path, overrides: dict) -> list[str]:
  return ([sys.executable, '-m', 'cosnet_jax.main', f'--config={config}',
           f'--workdir={workdir}'] +
          [f'--config.{k}={v}' for k, v in overrides.items()])


def _eval_cmd(workdir, dataset, data_root, split) -> list[str]:
  return [sys.executable, '-m', 'cosnet_jax.evaluate', f'--workdir={workdir}',
          f'--dataset={dataset}', f'--data_root={data_root}', f'--split={split}']


def _collect(workdir: pathlib.Path, eval_name: str, dest: pathlib.Path,
             run_info: dict) -> None:
  """Copies the small results of one run into `dest` (replacing what was there)."""
  src = workdir / 'eval' / eval_name
  if not (src / 'metrics.json').exists():
    raise SystemExit(f'{src}/metrics.json missing: the evaluation did not run')
  if dest.exists():
    shutil.rmtree(dest)
  dest.mkdir(parents=True)
  for name in ('metrics.json', 'metrics_coarse.json', 'metrics.md', 'roc.png'):
    if (src / name).exists():
      shutil.copy2(src / name, dest / name)
  overlays = sorted((src / 'overlays').glob('*.png'))[:OVERLAYS_KEPT]
  if overlays:
    (dest / 'overlays').mkdir()
    for p in overlays:
      shutil.copy2(p, dest / 'overlays' / p.name)
  for name in ('config.json', 'history.jsonl'):
    if (workdir / name).exists():
      shutil.copy2(workdir / name, dest / name)
  (dest / 'run.json').write_text(json.dumps(run_info, indent=1) + '\n')
  print(f'results in {dest}')


def _parse_sets(items: list[str]) -> dict:
  out = {}
  for item in items or []:
    if '=' not in item:
      raise SystemExit(f'--set {item!r}: expected key=value (a config field)')
    k, v = item.split('=', 1)
    out[k] = v
  return out


def _evaluate_finished(workdir: pathlib.Path, split: str, data_root: str) -> dict:
  """--collect_only: evaluates a trained workdir on `split` (best checkpoints).

  For a run whose training finished but whose final evaluation or collection
  did not (a crash, a kill). The training wall time is then read from the
  files: config.json is written when training starts, history.jsonl last
  when it ends.
  """
  if not (workdir / 'config.json').is_file():
    raise SystemExit(f'--collect_only: {workdir} holds no training run')
  train_s = (workdir / 'history.jsonl').stat().st_mtime - (workdir / 'config.json').stat().st_mtime
  eval_s = _run(_eval_cmd(workdir, OCTA500_NAME, data_root, split), workdir / 'experiment.log')
  return {'wall_s': round(train_s + eval_s, 1), 'train_wall_s_from_files': round(train_s, 1),
          'collected_after_the_run': True}


def run_octa500_3m(args) -> None:
  row = args.row
  if row == 'd':
    raise SystemExit('row d is the stage-1 output of row e (same run): run --row e')
  overrides = {**BUDGET, **ROWS[row], 'seed': args.seed,
               'data.root': args.data_root or DEFAULT_OCTA500,
               **_parse_sets(args.set)}
  tag = f'{row}-s{args.seed}'
  workdir = pathlib.Path(args.runs_dir).absolute() / 'octa500_3m' / tag
  cmd = _train_cmd('configs/octa500_3m.py:cpu', workdir, overrides)
  split = overrides.get('data.test_split', 'test')
  if args.collect_only:
    info = _evaluate_finished(workdir, split, args.data_root or DEFAULT_OCTA500)
  else:
    info = {'wall_s': round(_run(cmd, workdir / 'experiment.log'), 1)}
  info = {'experiment': 'octa500_3m', 'row': row, 'description': ROW_HELP[row],
          'seed': args.seed, 'command': ' '.join(cmd[1:]), **info,
          'hardware': _hardware(), 'finished': time.strftime('%Y-%m-%d %H:%M:%S')}
  _collect(workdir, f"{OCTA500_NAME.replace('/', '_')}-{split}",
           RESULTS / 'octa500_3m' / tag, info)


def run_rossa(args) -> None:
  """Train on train_manual, select on val; report on `--test_split`.

  ../shared/data/ROSSA has no test split: the default reports on val (the
  split also used for selection, so the figure is optimistic; say so). Point
  --data_root at a copy with `test/` and pass --test_split=test for the real one.
  """
  overrides = {**BUDGET, 'seed': args.seed, 'data.root': args.data_root or DEFAULT_ROSSA,
               'data.test_split': args.test_split, 'eval.final_split': args.test_split,
               **_parse_sets(args.set)}
  tag = f'e-s{args.seed}'
  workdir = pathlib.Path(args.runs_dir).absolute() / 'rossa' / tag
  cmd = _train_cmd('configs/rossa.py:cpu', workdir, overrides)
  wall = _run(cmd, workdir / 'experiment.log')
  info = {'experiment': 'rossa', 'row': 'e', 'seed': args.seed,
          'report_split': args.test_split, 'command': ' '.join(cmd[1:]),
          'wall_s': round(wall, 1), 'hardware': _hardware(),
          'finished': time.strftime('%Y-%m-%d %H:%M:%S')}
  _collect(workdir, f'rossa-{args.test_split}', RESULTS / 'rossa' / tag, info)


def run_synthetic_to_real(args) -> None:
  """zero_shot: train on synthetic OCTA only, evaluate on OCTA-500 3M test.
  finetune: start from the zero_shot run's stage 1 (best on synthetic val) and
  train on OCTA-500 3M with the octa500_3m budget (row e)."""
  root = args.data_root or DEFAULT_OCTA500
  runs = pathlib.Path(args.runs_dir).absolute() / 'synthetic_to_real'
  if args.part == 'zero_shot' and args.pretrain_seed is not None:
    raise SystemExit('--pretrain_seed applies to --part finetune; the zero_shot run '
                     'is the pre-training of --seed')
  pre_seed = args.seed if args.pretrain_seed is None else args.pretrain_seed
  pre = runs / f'pretrain-s{pre_seed}'
  if args.part == 'zero_shot':
    overrides = {**BUDGET, 'seed': args.seed, 'data.name': 'synthetic_octa',
                 'data.root': '', 'data.synthetic.num_train': 140,
                 'data.synthetic.num_val': 10, 'data.synthetic.num_test': 10,
                 **_parse_sets(args.set)}
    cmd = _train_cmd('configs/cpu.py', pre, overrides)
    wall = _run(cmd, pre / 'experiment.log')
    ecmd = _eval_cmd(pre, OCTA500_NAME, root, 'test')
    wall += _run(ecmd, pre / 'experiment.log')
    info = {'experiment': 'synthetic_to_real', 'part': 'zero_shot', 'seed': args.seed,
            'command': ' '.join(cmd[1:]) + ' && ' + ' '.join(ecmd[1:]),
            'wall_s': round(wall, 1), 'hardware': _hardware(),
            'finished': time.strftime('%Y-%m-%d %H:%M:%S')}
    _collect(pre, f"{OCTA500_NAME.replace('/', '_')}-test",
             RESULTS / 'synthetic_to_real' / f'zero_shot-s{args.seed}', info)
  else:
    if not (pre / 'checkpoints' / 'stage1').exists():
      raise SystemExit(f'{pre}: no pre-trained run; run --part zero_shot '
                       f'--seed {pre_seed} first')
    overrides = {**BUDGET, 'seed': args.seed, 'data.root': root,
                 'model.init_from': str(pre), **_parse_sets(args.set)}
    work = runs / f'finetune-s{args.seed}'
    cmd = _train_cmd('configs/octa500_3m.py:cpu', work, overrides)
    wall = _run(cmd, work / 'experiment.log')
    info = {'experiment': 'synthetic_to_real', 'part': 'finetune', 'seed': args.seed,
            'pretrain_seed': pre_seed, 'command': ' '.join(cmd[1:]), 'wall_s': round(wall, 1),
            'hardware': _hardware(), 'finished': time.strftime('%Y-%m-%d %H:%M:%S')}
    _collect(work, f"{OCTA500_NAME.replace('/', '_')}-test",
             RESULTS / 'synthetic_to_real' / f'finetune-s{args.seed}', info)


def main(argv=None) -> None:
  global RESULTS  # pylint: disable=global-statement
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('experiment', choices=('octa500_3m', 'rossa', 'synthetic_to_real'))
  p.add_argument('--row', default='e', choices=sorted(ROW_HELP),
                 help='octa500_3m ablation row (d comes from row e)')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--part', default='zero_shot', choices=('zero_shot', 'finetune'),
                 help='synthetic_to_real part')
  p.add_argument('--pretrain_seed', type=int, default=None,
                 help='synthetic_to_real finetune: start from pretrain-s<this> instead '
                      'of the same seed (separates fine-tuning seeds from pre-training)')
  p.add_argument('--data_root', default='', help='dataset folder (default ../shared/data/...)')
  p.add_argument('--test_split', default='val', help='rossa: split to report on')
  p.add_argument('--runs_dir', default=str(ROOT / 'runs' / 'experiments'),
                 help='where checkpoints go (not committed)')
  p.add_argument('--results_dir', default=str(RESULTS),
                 help='where the small results go (default experiments/results)')
  p.add_argument('--collect_only', action='store_true',
                 help='octa500_3m: evaluate and collect an already trained run '
                      '(its final evaluation did not happen) instead of training')
  p.add_argument('--set', action='append', metavar='KEY=VALUE',
                 help='extra config override, e.g. --set train.num_steps=100')
  args = p.parse_args(argv)
  RESULTS = pathlib.Path(args.results_dir).absolute()
  {'octa500_3m': run_octa500_3m, 'rossa': run_rossa,
   'synthetic_to_real': run_synthetic_to_real}[args.experiment](args)


if __name__ == '__main__':
  main()
