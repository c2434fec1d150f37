"""Training on a user's folder through `python -m cosnet_jax.main`: every bad input
is one line naming the file or key (exit 2, no traceback, the workdir unchanged);
a failed start leaves no config behind; a train-only folder gets a held-out
validation split and its final report on it; a rerun with another config that
changes no shapes is accepted and recorded, one that does is refused."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cosnet_jax.data import testing

pytestmark = pytest.mark.slow  # subprocesses

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'tests' / 'tiny_config.py'


def _main(tmp_path, workdir, *args, config=f'{CONFIG}:folder'):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS='cpu')
  cmd = [sys.executable, '-m', 'cosnet_jax.main', f'--config={config}',
         f'--workdir={workdir}', f'--config.data.cache_dir={tmp_path / "cache"}',
         '--nohugepages', *args]
  return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                        timeout=900)


def _one_line_error(r, *needles):
  assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
  assert 'Traceback' not in r.stderr, r.stderr[-3000:]
  first = next(l for l in r.stderr.splitlines() if l.startswith('error: '))
  for n in needles:
    assert n in r.stderr, (n, r.stderr[-2000:])
  return first


def _folder(tmp_path, name='data', splits=(('train', 4), ('test', 2))):
  return pathlib.Path(testing.write_flat(str(tmp_path / name), splits=splits, size=32))


def test_every_data_and_config_error_is_one_line(tmp_path):
  work = tmp_path / 'run'
  cases = []
  cases.append((['--config.data.root=' + str(tmp_path / 'missing')], ['missing', 'does not exist']))
  (tmp_path / 'empty').mkdir()
  cases.append((['--config.data.root=' + str(tmp_path / 'empty')], ['empty', 'is empty']))
  unpaired = _folder(tmp_path, 'unpaired')
  os.remove(unpaired / 'train' / 'label' / 'train1.png')
  cases.append(([f'--config.data.root={unpaired}'], ['train/image/train1.png', 'without mask label']))
  nonbinary = _folder(tmp_path, 'nonbinary')
  lab = np.zeros((32, 32), np.uint8)
  lab[1, 1] = 9
  Image.fromarray(lab).save(nonbinary / 'test' / 'label' / 'test0.png')
  cases.append(([f'--config.data.root={nonbinary}'], ['test/label/test0.png', 'not binary']))
  size = _folder(tmp_path, 'size')
  Image.fromarray(np.zeros((20, 32), np.uint8)).save(size / 'train' / 'label' / 'train0.png')
  cases.append(([f'--config.data.root={size}'], ['train/label/train0.png', '20x32']))
  trunc = _folder(tmp_path, 'trunc')
  (trunc / 'train' / 'image' / 'train2.png').write_bytes(b'\x89PNG\r\n\x1a\nno')
  cases.append(([f'--config.data.root={trunc}'], ['train/image/train2.png', 'Cannot read']))
  good = _folder(tmp_path, 'good')
  cases.append(([f'--config.data.root={good}', '--config.model.name=cosnet_huge'],
                ['config.model.name', 'cosnet_huge']))
  cases.append(([f'--config.data.root={good}', '--config.data.name=octa_folders'],
                ['octa_folders', 'config.data.name']))
  cases.append(([f'--config.data.root={good}', '--config.train.num_steps=abc'],
                ['--config.train.num_steps=abc', 'int']))
  cases.append(([f'--config.data.root={good}', '--config.data.crop_size=-32'],
                ['config.data.crop_size=-32']))
  for args, needles in cases:
    r = _main(tmp_path, work, *args)
    _one_line_error(r, *needles)
    assert not work.exists(), args          # nothing written
  # A dataset config without data.root says which flag to set and where to download.
  r = _main(tmp_path, work, config='octa500_3m:cpu')
  first = _one_line_error(r, '--config.data.root', 'ieee-dataport.org')
  assert first.startswith('error: config.data.root is empty')
  # A bug is not a user error: --traceback shows the stack of a user error on request.
  r = _main(tmp_path, work, '--traceback', '--config.data.root=' + str(tmp_path / 'missing'))
  assert r.returncode == 2 and 'Traceback' in r.stderr


def test_failed_start_then_train_only_folder_then_reruns(tmp_path):
  work = tmp_path / 'run'
  # A mistyped root: nothing is written, so the corrected start uses its own config.
  r = _main(tmp_path, work, f'--config.data.root={tmp_path / "typo"}')
  _one_line_error(r, 'typo')
  assert not work.exists()
  data = _folder(tmp_path, 'mine', splits=(('train', 10),))
  r = _main(tmp_path, work, f'--config.data.root={data}')
  assert r.returncode == 0, r.stderr[-4000:]
  # No val: 10 % held out of train (decided and logged at the start, ids written);
  # no test: the final report is on that val.
  assert "held out for validation" in r.stderr and "the final report uses 'val'" in r.stderr
  splits = json.loads((work / 'splits.json').read_text())['octa_folder']
  assert len(splits['val']) == 1 and len(splits['train']) == 9
  assert not set(splits['val']) & set(splits['train'])
  assert splits['final'] == splits['val']
  assert json.loads((work / 'config.json').read_text())['data']['root'] == str(data)
  report = work / 'eval' / 'octa_folder-val' / 'metrics.json'
  assert len(json.loads(report.read_text())['per_image']) == 1
  history = [json.loads(l) for l in (work / 'config_history.jsonl').read_text().splitlines()]
  assert history[0]['changed'] == 'first start'
  # A rerun with a config that changes no shapes: accepted, recorded, and its
  # final report uses it (the test-time augmentation of this run).
  r = _main(tmp_path, work, f'--config.data.root={data}', '--config.eval.tta=hflip')
  assert r.returncode == 0, r.stderr[-4000:]
  assert (work / 'eval' / 'octa_folder-val-tta_hflip' / 'metrics.json').is_file()
  history = [json.loads(l) for l in (work / 'config_history.jsonl').read_text().splitlines()]
  assert history[-1]['changed'] == {'eval.tta': ['none', 'hflip']}
  assert json.loads((work / 'config.json').read_text())['eval']['tta'] == 'hflip'
  # A shape-changing one: refused naming the field and both values; nothing touched.
  before = {p: p.stat().st_mtime_ns for p in work.rglob('*') if p.is_file()}
  r = _main(tmp_path, work, f'--config.data.root={data}', '--config.model.embed_dim=16')
  _one_line_error(r, 'config.model.embed_dim', 'saved 8', 'now 16')
  after = {p: p.stat().st_mtime_ns for p in work.rglob('*') if p.is_file()}
  assert before == after
  # cosnet-evaluate on the run: the split its report used (val, there is no
  # test), and a line saying it replaces that report.
  r = subprocess.run([sys.executable, '-m', 'cosnet_jax.evaluate', f'--workdir={work}',
                      '--nooverlays'], cwd=tmp_path, capture_output=True, text=True,
                     timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT),
                                           JAX_PLATFORMS='cpu'))
  assert r.returncode == 0, r.stderr[-3000:]
  assert "no 'test' split: evaluating 'val'" in r.stderr
  assert 'replacing the report in' in r.stderr and 'octa_folder-val' in r.stdout


def test_verify_lists_every_problem_and_summarises_a_clean_folder(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS='cpu')
  verify = lambda root: subprocess.run(
      [sys.executable, '-m', 'cosnet_jax.verify', f'--config={CONFIG}:folder',
       f'--config.data.root={root}'], cwd=tmp_path, env=env, capture_output=True,
      text=True, timeout=300)
  good = _folder(tmp_path, 'good', splits=(('train', 5), ('test', 2)))
  r = verify(good)
  assert r.returncode == 0, r.stderr
  assert 'octa_folder: train 5, test 2 pairs; images 32x32; vessel fraction' in r.stdout
  assert "split 'val' held out of train" in r.stdout
  bad = _folder(tmp_path, 'bad', splits=(('train', 5), ('test', 2)))
  os.remove(bad / 'train' / 'label' / 'train0.png')
  Image.fromarray(np.full((32, 32), 7, np.uint8)).save(bad / 'test' / 'label' / 'test1.png')
  (bad / 'train' / 'image' / 'train3.png').write_bytes(b'not an image')
  r = verify(bad)
  assert r.returncode == 1
  problems = [l for l in r.stdout.splitlines() if l.startswith('problem: ')]
  assert len(problems) == 3 and '3 problem(s) found' in r.stderr
  for part in ('train/image/train0.png', 'test/label/test1.png', 'train/image/train3.png'):
    assert any(part in p for p in problems), part
