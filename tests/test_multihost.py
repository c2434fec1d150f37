"""Multi-host for real: two processes on localhost (2 CPU devices each) train
the same steps as one process with 4 devices, and log the same losses."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

import tiny_config
from cosnet_jax.train import loop

pytestmark = pytest.mark.slow  # subprocesses

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'tests' / 'tiny_config.py'


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _cmd(workdir, data_cache, extra=()):
  return [sys.executable, '-m', 'cosnet_jax.main', f'--config={CONFIG}:slice',
          f'--workdir={workdir}', f'--config.data.cache_dir={data_cache}', *extra]


def _env(devices):
  env = dict(os.environ)
  # LLVM optimisations off: these processes run 3 tiny steps, compile dominates.
  env['XLA_FLAGS'] = (f'--xla_force_host_platform_device_count={devices} '
                      '--xla_backend_optimization_level=0')
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = str(ROOT)
  return env


def _losses(workdir):
  lines = (pathlib.Path(workdir) / 'history.jsonl').read_text().splitlines()
  return [(h['step'], h['loss'], h['seg_thick'], h['contrast_thick'])
          for h in map(json.loads, lines) if 'loss' in h]


def _one_process_reference(workdir, data_cache):
  """tiny_config:slice in this process (4 devices): tiny_run's compiled step."""
  config = tiny_config.get_config('slice')
  config.data.cache_dir = str(data_cache)
  with pytest.raises(loop.RunSliceDone):
    loop.train_and_evaluate(config, str(workdir))


def test_two_processes_match_one_process(tmp_path, data_cache):
  _one_process_reference(tmp_path / 'one', data_cache)
  port = _free_port()
  procs = [subprocess.Popen(
      _cmd(tmp_path / 'two', data_cache,
           [f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
            f'--process_id={i}']),
      env=_env(2), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for i in range(2)]
  try:
    outs = [p.communicate(timeout=900) for p in procs]
  finally:
    for p in procs:
      p.kill()
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  one, two = _losses(tmp_path / 'one'), _losses(tmp_path / 'two')
  assert [s for s, *_ in one] == [s for s, *_ in two] == [1, 2, 3]
  one, two = np.array(one)[:, 1:], np.array(two)[:, 1:]
  # Step 1 runs on identical parameters and data: equal up to float order.
  np.testing.assert_allclose(one[0], two[0], rtol=1e-5)
  # Later steps: cross-process reductions reorder float sums, and the discrete
  # anchor choice (per-image Otsu, top-k) amplifies that in the contrast term:
  # measured 2e-4 relative on one CPU, 3.7e-3 on an AVX-512 one (step 3),
  # where the loss and segmentation terms stayed within 1.7e-3.
  np.testing.assert_allclose(one[:, :2], two[:, :2], rtol=3e-3)
  np.testing.assert_allclose(one[:, 2], two[:, 2], rtol=1e-2)
  # Only process 0 wrote logs and checkpoints metadata.
  assert len(list((tmp_path / 'two').glob('events.out.tfevents.*'))) == 1
