"""Faults a run meets: a held workdir, damaged checkpoints, unwritable places, a full
disk, signals at any step and during the final report, values out of range."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import weakref

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from cosnet_jax import checkpoints, places
from cosnet_jax.errors import CheckpointNotFoundError, ConfigError, UserError
from cosnet_jax.inference import trained as trained_lib
from cosnet_jax.train import compiled, loop, workdir_lock
from cosnet_jax.train.interrupts import STOP
from tiny_config import tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'tests' / 'tiny_config.py'


def _env():
  return dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS='cpu')


def _stage1_only(data_cache, steps=2):
  c = tiny_config(data_cache, steps=steps, refine_steps=0)
  c.optimizer.learning_rate = 3e-3
  c.eval.final_split = ''
  return c


def _raw(workdir, stage, step):
  path = pathlib.Path(workdir) / 'checkpoints' / stage / 'latest' / str(step) / 'default'
  return ocp.StandardCheckpointer().restore(path)


# ------------------------------------------------------------------ the lock


def test_a_held_workdir_is_refused_naming_the_holder(data_cache, tmp_path):
  work = tmp_path / 'run'
  work.mkdir()
  held = workdir_lock.WorkdirLock(work)
  held.acquire()
  try:
    with pytest.raises(workdir_lock.WorkdirInUseError,
                       match=rf'in use by PID {os.getpid()} on host .*, running since'):
      loop.train_and_evaluate(_stage1_only(data_cache), str(work))
  finally:
    held.release()
  assert sorted(p.name for p in work.iterdir()) == ['.lock']     # nothing else written


def test_the_lock_of_a_killed_run_is_taken_over(data_cache, tmp_path, caplog):
  work = tmp_path / 'run'
  work.mkdir()
  (work / '.lock').write_text(json.dumps({'host': 'gone', 'pid': 999999,
                                          'started': '2026-01-01T00:00:00'}))
  loop.train_and_evaluate(_stage1_only(data_cache), str(work))
  assert 'taking over the lock of PID 999999 on host gone' in caplog.text
  assert (work / '.lock').read_text() == ''                       # released at the end


@pytest.mark.slow
def test_a_second_command_on_a_held_workdir_is_one_line(tmp_path):
  work = tmp_path / 'run'
  work.mkdir()
  holder = subprocess.Popen(
      [sys.executable, '-c', textwrap.dedent(f'''
          import pathlib, sys, time
          from cosnet_jax.train import workdir_lock
          lock = workdir_lock.WorkdirLock(pathlib.Path({str(work)!r}))
          lock.acquire()
          print('held', flush=True)
          time.sleep(120)''')],
      env=_env(), stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    r = subprocess.run([sys.executable, '-m', 'cosnet_jax.main', f'--config={CONFIG}',
                        f'--workdir={work}', '--nohugepages'], env=_env(),
                       capture_output=True, text=True, timeout=300)
  finally:
    holder.kill()
    holder.wait()
  assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
  assert f'is in use by PID {holder.pid}' in r.stderr
  assert r.stderr.count('error:') == 1


# -------------------------------------------------------- damaged checkpoints


def _copy_run(tiny_run, tmp_path):
  workdir, _ = tiny_run
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns('.lock'))
  return copy


def _largest_file(folder: pathlib.Path) -> pathlib.Path:
  return max((p for p in folder.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tiny_run, tmp_path, caplog):
  run = _copy_run(tiny_run, tmp_path)
  stage1 = run / 'checkpoints' / 'stage1'
  big = _largest_file(stage1 / 'latest' / '6')
  big.write_bytes(big.read_bytes()[:100])                          # truncated
  ckpt = checkpoints.StageCheckpoints(stage1)
  state, step = ckpt.restore_raw('latest')
  assert step == 3 and int(state['step']) == 3
  assert 'latest/6 is damaged' in caplog.text and 'kept aside' in caplog.text
  aside = list((stage1 / 'damaged').iterdir())
  assert len(aside) == 1 and aside[0].name.startswith('latest-6-')   # kept, not deleted
  assert ckpt.latest.all_steps() == [3]
  # The one before damaged too (its metadata deleted): one error naming the folder,
  # and nothing moved (every checkpoint failing is more often a changed package).
  for meta in (stage1 / 'latest' / '3').rglob('_METADATA'):
    meta.unlink()
  with pytest.raises(CheckpointNotFoundError,
                     match=rf'no intact checkpoint in {stage1}.*none was moved'):
    ckpt.restore_raw('latest')
  assert (stage1 / 'latest' / '3').is_dir() and len(list((stage1 / 'damaged').iterdir())) == 1
  ckpt.close()


def test_a_damaged_best_checkpoint_falls_back_for_evaluation(tiny_run, tmp_path, caplog):
  run = _copy_run(tiny_run, tmp_path)
  best = run / 'checkpoints' / 'stage2' / 'best'
  step = next(p for p in best.iterdir() if p.name.isdigit())
  big = _largest_file(step)
  big.write_bytes(b'\0' * 10)
  trained = trained_lib.from_workdir(run, 'best')
  assert trained.meta['steps']['stage2'] == 2                      # the latest instead
  assert 'is damaged' in caplog.text


# --------------------------------------------------------------- the places


def test_places_are_checked_without_writing(tmp_path):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(UserError, match='a file, not a folder'):
    places.writable_folder(tmp_path / 'file', '--workdir')
  with pytest.raises(UserError, match='is a file, not a folder'):
    places.writable_folder(tmp_path / 'file' / 'sub', '--workdir')
  assert places.writable_folder(tmp_path / 'new' / 'deeper', '--workdir').name == 'deeper'
  assert not (tmp_path / 'new').exists()
  with pytest.raises(UserError, match='a folder; give the file'):
    places.writable_file(tmp_path, '--out')


@pytest.mark.slow
def test_a_workdir_that_is_a_file_fails_before_the_data_are_read(tmp_path):
  (tmp_path / 'run').write_text('x')
  r = subprocess.run([sys.executable, '-m', 'cosnet_jax.main', f'--config={CONFIG}:folder',
                      f'--workdir={tmp_path / "run"}', f'--config.data.root={tmp_path / "no"}',
                      '--nohugepages'], env=_env(), capture_output=True, text=True, timeout=300)
  assert r.returncode == 2 and 'Traceback' not in r.stderr
  assert f'error: workdir {tmp_path / "run"}: a file, not a folder' in r.stderr


def _small_disk(kb):
  """A command prefix running in its own mount namespace with a kb-sized tmpfs at
  /mnt (skips the test where such a namespace cannot be made)."""
  probe = subprocess.run(['unshare', '-rm', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /mnt'],
                         capture_output=True)
  if probe.returncode != 0:
    pytest.skip('cannot mount a small tmpfs here (unshare -rm)')
  return ['unshare', '-rm', 'sh', '-c', f'mount -t tmpfs -o size={kb}k tmpfs /mnt && exec "$@"',
          'sh']


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last(tmp_path):
  # 2.5 MB: the best checkpoint of step 2 fits (about 1.5 MB), its latest does not.
  r = subprocess.run(_small_disk(2560) + [
      sys.executable, '-m', 'cosnet_jax.main', f'--config={CONFIG}', '--workdir=/mnt/run',
      f'--config.data.cache_dir={tmp_path / "cache"}', '--nohugepages'],
      env=_env(), capture_output=True, text=True, timeout=600)
  assert r.returncode == 2, r.stderr[-3000:]
  assert 'Traceback' not in r.stderr and r.stderr.count('error:') == 1, r.stderr[-3000:]
  assert 'could not write checkpoint 2 in /mnt/run/checkpoints/stage1/latest' in r.stderr
  assert 'No space left on device' in r.stderr
  assert len(r.stderr.splitlines()) < 40


@pytest.mark.slow
def test_predict_onto_a_full_disk_is_one_line(tiny_run, tmp_path):
  scans = tmp_path / 'scans'
  scans.mkdir()
  for i in range(3):
    Image.fromarray((np.random.default_rng(i).random((64, 64)) * 255).astype(np.uint8)).save(
        scans / f's{i}.png')
  r = subprocess.run(_small_disk(8) + [
      sys.executable, '-m', 'cosnet_jax.predict', f'--workdir={tiny_run[0]}',
      f'--input={scans}', '--output=/mnt/out'], env=_env(), capture_output=True, text=True,
      timeout=300)
  assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-3000:]
  assert 'error: /mnt/out/' in r.stderr and 'No space left on device' in r.stderr


# ----------------------------------------------------------------- signals


def _signal_at_call(n, sig=signal.SIGINT):
  def wrap(train_fn):
    calls = []

    def step(*args):
      calls.append(1)
      if len(calls) == n:
        os.kill(os.getpid(), sig)
      return train_fn(*args)
    return step
  return wrap


def test_a_signal_in_the_last_refinement_step_stops_and_the_rerun_matches(
    tiny_run, data_cache, tmp_path):
  def stage2(*args):
    fns = compiled.stage2_functions(*args)
    return fns._replace(train_step=_signal_at_call(2)(fns.train_step))
  config = tiny_config(data_cache)
  config.optimizer.learning_rate = 3e-3
  with pytest.raises(KeyboardInterrupt, match=r'\[stage2\] stopped by SIGINT \(step 2\)'):
    loop.train_and_evaluate(config, str(tmp_path), compiled.Builders(stage2=stage2))
  assert not (tmp_path / 'eval').exists()                           # stopped before the report
  result = loop.train_and_evaluate(config, str(tmp_path))            # resumes: report only
  assert result['final'] is not None
  straight, resumed = _raw(tiny_run[0], 'stage2', 2), _raw(tmp_path, 'stage2', 2)
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_a_signal_in_the_last_stage1_step_stops_before_stage2(data_cache, tmp_path):
  config = _stage1_only(data_cache, steps=2)
  config.refine.num_steps = 1
  builders = compiled.Builders(stage1=lambda *a: (lambda f: f._replace(
      train_step=_signal_at_call(2, signal.SIGTERM)(f.train_step)))(
          compiled.stage1_functions(*a)))
  with pytest.raises(KeyboardInterrupt, match=r'\[stage1\] stopped by SIGTERM \(step 2\)'):
    loop.train_and_evaluate(config, str(tmp_path), builders)
  assert (tmp_path / 'checkpoints' / 'stage1' / 'latest' / '2').is_dir()
  assert not (tmp_path / 'checkpoints' / 'stage2').exists()


def test_a_signal_during_the_final_report_stops_with_the_reason():
  STOP.install()
  try:
    with pytest.raises(KeyboardInterrupt, match='stopped by SIGINT during the report'):
      with STOP.immediate('the report'):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10 ** 6):   # the handler raises between bytecodes
          pass
  finally:
    STOP.uninstall()


def test_a_signal_whose_raise_a_callback_drops_still_stops_the_report(monkeypatch):
  dropped = []
  monkeypatch.setattr(sys, 'unraisablehook', lambda u: dropped.append(u.exc_type))
  STOP.install()
  try:
    with pytest.raises(KeyboardInterrupt, match='stopped by SIGINT during the report'):
      with STOP.immediate('the report'):
        holder = type('Holder', (), {})()
        weakref.finalize(holder, signal.raise_signal, signal.SIGINT)
        del holder   # the handler runs in the finalizer, whose exception Python drops
        assert dropped == [KeyboardInterrupt]
  finally:
    STOP.uninstall()


# ------------------------------------------------------------ value ranges


@pytest.mark.parametrize('field, value, says', [
    ('data.crop_size', -32, 'config.data.crop_size=-32: expected an int >= 0'),
    ('data.pad_multiple', 16, 'a positive multiple of 32'),
    ('data.holdout_fraction', 1.5, 'config.data.holdout_fraction=1.5'),
    ('data.augment.blur_prob', 2.0, 'a probability in [0, 1]'),
    ('data.spacing_um', -1.0, 'config.data.spacing_um=-1.0'),
    ('train.num_steps', 0, 'config.train.num_steps=0'),
    ('train.time_budget_s', 0.0, 'config.train.time_budget_s=0.0'),
    ('optimizer.weight_decay', -1e-4, 'config.optimizer.weight_decay'),
    ('contrast.weight', -0.1, 'config.contrast.weight'),
    ('contrast.hard_fraction', 1.5, 'config.contrast.hard_fraction'),
    ('eval.select_metric', 'dcie', "config.eval.select_metric='dcie'"),
    ('refine.model.neighbourhood', 4, 'an odd size'),
])
def test_values_out_of_range_are_named(data_cache, tmp_path, field, value, says):
  config = tiny_config(data_cache)
  section, _, key = field.rpartition('.')
  node = config
  for part in section.split('.'):
    node = node[part]
  node[key] = value
  if field == 'train.num_steps':
    config.train.num_epochs = -1
  with pytest.raises(ConfigError, match=says.replace('[', r'\[').replace('(', r'\(')):
    loop.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


# ------------------------------------------------------------------ --help


@pytest.mark.slow
@pytest.mark.parametrize('command, own_flag', [
    ('main', '--workdir'), ('evaluate', '--split'), ('predict', '--recursive'),
    ('export', '--description'), ('verify', '--config'), ('cross_domain', '--folder'),
    ('measure', '--roi_mm')])
def test_help_lists_the_commands_own_flags(command, own_flag):
  r = subprocess.run([sys.executable, '-m', f'cosnet_jax.{command}', '--help'], env=_env(),
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr
  assert own_flag in r.stdout and 'flags:' in r.stdout and '--helpfull' in r.stdout
  assert '--pdb' not in r.stdout and 'restarting' not in r.stderr   # library flags, restart
