"""evaluate and predict end to end on the checkpoint of the tiny training run:
reports on the training dataset and on an arbitrary folder, predictions on odd
sizes, 16-bit, RGB and tiled inputs, and the bad-input paths."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cosnet_jax import evaluate, inputs, predict
from cosnet_jax.data import testing as data_testing
from cosnet_jax.errors import ConfigError
from cosnet_jax.inference import evaluate_split, segmenter as inference, trained as trained_lib
from cosnet_jax.train import loop
from tiny_config import tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run_cli(module, *args):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def test_evaluate_on_another_folder_and_split(tiny_run, tmp_path):
  workdir, _ = tiny_run
  folder = data_testing.write_flat(str(tmp_path / 'folder'),
                                   splits=(('test', 3),), size=48)
  out = evaluate.run(workdir, dataset='octa_folder', data_root=folder,
                     split='test', checkpoint='latest')
  report = pathlib.Path(out['out_dir'])
  assert report == workdir / 'eval' / 'octa_folder-test'
  metrics = json.loads((report / 'metrics.json').read_text())
  assert len(metrics['per_image']) == 3
  for m in metrics['per_image']:
    assert all(np.isfinite(m[k]) for k in ('auc', 'dice', 'kappa', 'gmean'))
  assert (report / 'metrics_coarse.json').exists() and (report / 'roc.png').exists()
  assert len(list((report / 'overlays').glob('*.png'))) == 3
  assert out['steps']['stage2'] == 2  # latest stage-2 checkpoint
  assert '| refined |' in (report / 'metrics.md').read_text()


def test_segmenter_matches_eval_pipeline_and_handles_odd_inputs(tiny_run):
  workdir, _ = tiny_run
  seg = inference.Segmenter.from_workdir(workdir, max_side=96, tile=64, overlap=16)
  rng = np.random.RandomState(0)
  gray = (rng.rand(45, 70) * 255).astype(np.uint8)
  prob, mask = seg(gray)
  assert prob.shape == mask.shape == (45, 70)
  assert prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
  # 16-bit and RGB versions of the same picture give the same result.
  prob16, _ = seg(gray.astype(np.uint16) * 257)
  np.testing.assert_allclose(prob16, prob, atol=1e-5)
  prob_rgb, _ = seg(np.stack([gray] * 3, axis=-1))
  np.testing.assert_allclose(prob_rgb, prob, atol=1e-4)
  # Above max_side the image is tiled and cropped back.
  big = (rng.rand(150, 200) * 255).astype(np.uint8)
  prob_big, mask_big = seg(big, threshold=0.5)
  assert prob_big.shape == (150, 200)
  np.testing.assert_array_equal(mask_big, prob_big > 0.5)


def test_predict_folder_reports_bad_files_and_goes_on(tiny_run, tmp_path):
  workdir, _ = tiny_run
  src = tmp_path / 'in'
  src.mkdir()
  rng = np.random.RandomState(1)
  Image.fromarray((rng.rand(40, 52) * 255).astype(np.uint8)).save(src / 'a.png')
  Image.fromarray((rng.rand(33, 33) * 65535).astype(np.uint16)).save(src / 'b.tif')
  Image.fromarray((rng.rand(32, 40, 3) * 255).astype(np.uint8)).save(src / 'c.jpg')
  (src / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
  # The same name twice (a.png, a.bmp): both kept, each with its extension.
  Image.fromarray((rng.rand(36, 36) * 255).astype(np.uint8)).save(src / 'd.png')
  Image.fromarray((rng.rand(36, 44) * 255).astype(np.uint8)).save(src / 'd.bmp')
  (src / 'sub').mkdir()
  Image.fromarray((rng.rand(32, 32) * 255).astype(np.uint8)).save(src / 'sub' / 'e.png')
  seg = inference.Segmenter.from_workdir(workdir)
  out = tmp_path / 'out'
  found = inputs.find_images(str(src))
  assert [f.name for f in found.skipped_folders] == ['sub']
  failures, masks = predict.predict_files(seg, found, out, 'otsu', stream=sys.stdout)
  assert [pathlib.Path(f).name for f, _ in failures] == ['broken.png']
  assert sorted(name for name, _ in masks) == ['a', 'b', 'c', 'd_bmp', 'd_png']
  assert np.asarray(Image.open(out / 'd_bmp_mask.png')).shape == (36, 44)
  assert np.asarray(Image.open(out / 'd_png_mask.png')).shape == (36, 36)
  # --recursive mirrors the subfolders under the output.
  deep = inputs.find_images(str(src), recursive=True)
  predict.predict_files(seg, deep, tmp_path / 'deep', 'otsu', stream=sys.stdout)
  assert np.asarray(Image.open(tmp_path / 'deep' / 'sub' / 'e_mask.png')).shape == (32, 32)
  for stem, shape in (('a', (40, 52)), ('b', (33, 33)), ('c', (32, 40))):
    mask = np.asarray(Image.open(out / f'{stem}_mask.png'))
    prob = np.asarray(Image.open(out / f'{stem}_prob.png'))
    assert mask.shape == prob.shape == shape
    assert set(np.unique(mask)) <= {0, 255}
    assert prob.dtype == np.uint16
    assert (out / f'{stem}_overlay.png').exists()


@pytest.mark.slow
def test_predict_cli_errors_are_one_line(tiny_run, tmp_path):
  workdir, _ = tiny_run
  empty = tmp_path / 'empty'
  empty.mkdir()
  r = _run_cli('cosnet_jax.predict', f'--workdir={workdir}', f'--input={empty}',
               f'--output={tmp_path / "o"}')
  assert r.returncode == 2 and 'no images' in r.stderr
  assert 'Traceback' not in r.stderr
  r = _run_cli('cosnet_jax.predict', f'--workdir={tmp_path}', f'--input={empty}',
               f'--output={tmp_path / "o"}')
  assert r.returncode == 2
  r = _run_cli('cosnet_jax.predict', f'--workdir={tmp_path / "nowhere"}',
               f'--input={ROOT / "README.md"}', f'--output={tmp_path / "o"}')
  assert r.returncode == 2 and 'not a cosnet_jax training workdir' in r.stderr
  assert 'Traceback' not in r.stderr
  # An output that is a file: refused before the model is loaded.
  (tmp_path / 'taken').write_text('x')
  r = _run_cli('cosnet_jax.predict', f'--workdir={workdir}', f'--input={empty}',
               f'--output={tmp_path / "taken"}')
  assert r.returncode == 2 and r.stderr.startswith('error: --output') and 'a file' in r.stderr
  # A broken link and a link loop are named; a subfolder is counted.
  scans = tmp_path / 'scans'
  (scans / 'sub').mkdir(parents=True)
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(scans / 'a.png')
  (scans / 'gone.png').symlink_to(tmp_path / 'nothing.png')
  (scans / 'sub' / 'loop').symlink_to(scans)
  r = _run_cli('cosnet_jax.predict', f'--workdir={workdir}', f'--input={scans}',
               f'--output={tmp_path / "o2"}')
  assert r.returncode == 1 and 'gone.png: a broken link' in r.stderr, r.stderr
  assert '1 subfolder(s) skipped' in r.stderr and 'Traceback' not in r.stderr
  r = _run_cli('cosnet_jax.predict', f'--workdir={workdir}', f'--input={scans}',
               f'--output={tmp_path / "o3"}', '--recursive')
  assert r.returncode == 1 and 'loop: a link back into a folder already read' in r.stderr


@pytest.mark.slow
def test_main_rejects_unknown_config_key(tmp_path):
  r = _run_cli('cosnet_jax.main', '--config=configs/synthetic.py',
               f'--workdir={tmp_path}', '--config.train.num_stepz=3')
  assert r.returncode == 2
  assert "unknown config key 'train.num_stepz'" in r.stderr
  assert 'train.num_steps' in r.stderr  # the valid keys are listed


def test_flip_tta_in_evaluate_and_segmenter(tiny_run, tmp_path):
  workdir, _ = tiny_run
  folder = data_testing.write_flat(str(tmp_path / 'folder'), splits=(('test', 2),), size=48)
  kw = dict(dataset='octa_folder', data_root=folder, checkpoint='latest')
  trained = trained_lib.from_workdir(workdir, 'latest')
  data_cfg = evaluate_split.dataset_config(trained, 'octa_folder', folder)
  plain = evaluate_split.model_maps(trained, data_cfg, 'test')
  flips = evaluate_split.model_maps(trained, data_cfg, 'test', tta='flips')
  assert plain['tta'] == 'none' and flips['tta'] == 'flips'
  seg = inference.Segmenter.from_workdir(workdir, 'latest', tta='flips')
  for p, f in zip(plain['results'], flips['results']):
    assert not np.allclose(p['refined'], f['refined'], atol=1e-6)  # it did something
    # The same mirrors through the numpy-in / numpy-out path give the same map.
    raw = np.asarray(Image.open(pathlib.Path(folder) / 'test' / 'image' / f"{f['id']}.png"))
    np.testing.assert_allclose(seg.probabilities(raw), f['refined'], atol=2e-5)
  out = evaluate.run(workdir, split='test', tta='flips', overlays=False, **kw)
  assert out['tta'] == 'flips'
  assert pathlib.Path(out['out_dir']).name == 'octa_folder-test-tta_flips'
  with pytest.raises(ConfigError, match="tta='rot90'"):
    evaluate_split.model_maps(trained, data_cfg, 'test', tta='rot90')


def test_bad_eval_tta_fails_before_training(data_cache, tmp_path):
  config = tiny_config(data_cache)
  config.eval.tta = 'mirror'
  with pytest.raises(ConfigError, match="config.eval.tta='mirror'"):
    loop.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run' / 'checkpoints').exists()
