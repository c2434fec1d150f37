"""The installed package on a machine without TensorFlow: a wheel-style install
(`pip install --no-deps .` into a venv), run from another directory with
tensorflow, tensorflow_datasets and clu unimportable: cosnet-train (both stages
and the final report, TensorBoard events through tensorboardX), cosnet-evaluate,
cosnet-export and cosnet-predict on the exported file, which gives the masks of
the workdir; a shipped config found by name."""
import os
import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # subprocesses and a virtual environment

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Put first on sys.path (as sitecustomize): these packages look absent, as on a
# machine without them: importlib.util.find_spec gives None (what etils and
# orbax probe) and importing them raises ModuleNotFoundError.
BLOCKER = '''
import sys
BLOCKED = ('tensorflow', 'tensorflow_datasets', 'clu')
class _Hide:
  def __init__(self, inner):
    self.inner = inner
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in BLOCKED:
      return None
    return self.inner.find_spec(name, path, target)
  def __getattr__(self, attr):
    return getattr(self.inner, attr)
sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
'''


@pytest.fixture(scope='module')
def venv(tmp_path_factory):
  """A venv that sees this interpreter's packages, with cosnet-jax installed from a
  wheel of a copy (not the checkout: what `pip install .` puts in site-packages)."""
  base = tmp_path_factory.mktemp('pkg')
  src = base / 'src'
  shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
      '.git', 'runs', 'build', '*.egg-info', '__pycache__', 'experiments'))
  # The wheel is built here, with this environment's setuptools, offline.
  built = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                          '--no-build-isolation', '-w', str(base / 'dist'), str(src)],
                         capture_output=True, text=True, timeout=600)
  assert built.returncode == 0, built.stderr[-3000:]
  env_dir = base / 'venv'
  subprocess.run([sys.executable, '-m', 'venv', str(env_dir)], check=True, timeout=300)
  # This interpreter's packages (a venv's or the system's) behind the new venv's own:
  # a --system-site-packages venv would see the base interpreter's instead.
  inner = subprocess.run([str(env_dir / 'bin' / 'python'), '-c',
                          'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                         capture_output=True, text=True, check=True).stdout.strip()
  outer = {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib'],
           *site.getsitepackages()}
  pathlib.Path(inner, 'outer_packages.pth').write_text('\n'.join(sorted(outer)) + '\n')
  wheel = next((base / 'dist').glob('cosnet_jax-*.whl'))
  pip = subprocess.run([str(env_dir / 'bin' / 'python'), '-m', 'pip', 'install', '-q',
                        '--no-deps', '--no-index', str(wheel)],
                       capture_output=True, text=True, timeout=600)
  assert pip.returncode == 0, pip.stderr[-3000:]
  blocker = base / 'blocker'
  blocker.mkdir()
  (blocker / 'sitecustomize.py').write_text(BLOCKER)
  return env_dir, blocker


def _run(venv, cmd, *args, cwd):
  env_dir, blocker = venv
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  env['PYTHONPATH'] = str(blocker)           # no checkout on the path: the install only
  env['JAX_PLATFORMS'] = 'cpu'
  env['XLA_FLAGS'] = '--xla_backend_optimization_level=0'
  return subprocess.run([str(env_dir / 'bin' / cmd), *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=900)


def test_install_train_export_predict_without_tensorflow(venv, tmp_path):
  work = tmp_path / 'elsewhere'
  work.mkdir()
  config = ROOT / 'tests' / 'tiny_config.py'
  r = _run(venv, 'python', '-c', 'import cosnet_jax, tensorflow', cwd=work)
  assert r.returncode != 0 and "No module named 'tensorflow'" in r.stderr  # the blocker works
  r = _run(venv, 'python', '-c', 'import importlib.util as u; '
           'assert u.find_spec("tensorflow_datasets") is None', cwd=work)
  assert r.returncode == 0, r.stderr
  r = _run(venv, 'python', '-c', 'import cosnet_jax; print(cosnet_jax.__file__)', cwd=work)
  assert 'site-packages' in r.stdout, r.stdout + r.stderr
  r = _run(venv, 'cosnet-train', f'--config={config}', '--workdir=run',
           f'--config.data.cache_dir={tmp_path / "cache"}', '--nohugepages', cwd=work)
  assert r.returncode == 0, r.stderr[-4000:]
  run = work / 'run'
  assert (run / 'eval' / 'synthetic_octa-test' / 'metrics.json').is_file()
  assert list(run.glob('events.out.tfevents.*'))            # tensorboardX, no TensorFlow
  assert (run / 'params.txt').is_file() and 'total' in (run / 'params.txt').read_text()
  # The console: the one-line parameter summary, no orbax INFO chatter.
  assert 'M parameters' in r.stderr and 'CheckpointManager' not in r.stderr
  r = _run(venv, 'cosnet-evaluate', '--workdir=run', '--split=val', '--nooverlays',
           cwd=work)
  assert r.returncode == 0, r.stderr[-3000:]
  assert (run / 'eval' / 'synthetic_octa-val' / 'metrics.md').is_file()
  r = _run(venv, 'cosnet-export', '--workdir=run', '--out=tiny.cosnet', cwd=work)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'x the' in r.stdout and (work / 'tiny.cosnet').is_file()
  scans = work / 'scans'
  scans.mkdir()
  rng = np.random.default_rng(0)
  for i, shape in enumerate(((64, 64), (50, 70))):
    Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(scans / f's{i}.png')
  for flag, out in (('--model=tiny.cosnet', 'from_file'), ('--workdir=run', 'from_run')):
    r = _run(venv, 'cosnet-predict', flag, '--input=scans', f'--output={out}', cwd=work)
    assert r.returncode == 0, r.stderr[-3000:]
  for i in range(2):
    a = np.asarray(Image.open(work / 'from_file' / f's{i}_mask.png'))
    b = np.asarray(Image.open(work / 'from_run' / f's{i}_mask.png'))
    np.testing.assert_array_equal(a, b)
    pa = np.asarray(Image.open(work / 'from_file' / f's{i}_prob.png'))
    pb = np.asarray(Image.open(work / 'from_run' / f's{i}_prob.png'))
    np.testing.assert_array_equal(pa, pb)
  # The masks measured without TensorFlow either (skan, scikit-image, scipy).
  r = _run(venv, 'cosnet-measure', '--input=from_file', '--output=b.csv', '--fov_mm=3', cwd=work)
  assert r.returncode == 0, r.stderr[-3000:]
  assert (work / 'b.csv').read_text().splitlines()[0].startswith('image,spacing_um,vad,')
  r = _run(venv, 'cosnet-measure', '--help', cwd=work)
  assert r.returncode == 0 and '--roi_mm' in r.stdout and 'debugger' not in r.stdout
  # The shipped models, by name, right after the install: no training, no download.
  shipped = sorted(p.name for p in (ROOT / 'cosnet_jax' / 'weights').glob('*.cosnet'))
  assert shipped, 'no model in cosnet_jax/weights'
  for name in shipped:
    r = _run(venv, 'cosnet-predict', f'--model={name[:-len(".cosnet")]}', '--input=scans',
             f'--output=shipped_{name}', cwd=work)
    assert r.returncode == 0, r.stderr[-3000:]
    mask = np.asarray(Image.open(work / f'shipped_{name}' / 's1_mask.png'))
    assert mask.shape == (50, 70) and set(np.unique(mask)) <= {0, 255}
  # A shipped config by name, from this directory: its keys are checked before anything runs.
  r = _run(venv, 'cosnet-train', '--config=octa500_3m:cpu', '--workdir=x',
           '--config.data.rooot=1', '--nohugepages', cwd=work)
  assert r.returncode == 2 and "unknown config key 'data.rooot'" in r.stderr
  assert 'Traceback' not in r.stderr and not (work / 'x').exists()
