"""experiments/gpu_paper_octa500.py end to end on a tiny model and folder.

The script runs only on lent accelerators, where a failure costs scarce
device time; this runs its real loop (both stages, selection, report) on CPU.
"""
import json
import pathlib
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'experiments'))

import gpu_paper_octa500  # pylint: disable=g-import-not-at-top,wrong-import-position


def _flat_folder(root: pathlib.Path, counts=(('train', 8), ('val', 2), ('test', 2))):
  """{split}/{image,label}/<id>.png: bright lines (vessels) on noise, 64 x 64."""
  rng = np.random.default_rng(0)
  k = 0
  for split, n in counts:
    for sub in ('image', 'label'):
      (root / split / sub).mkdir(parents=True)
    for _ in range(n):
      label = np.zeros((64, 64), np.uint8)
      for _ in range(3):
        if rng.random() < 0.5:
          label[rng.integers(4, 60), :] = 255
        else:
          label[:, rng.integers(4, 60)] = 255
      image = np.clip(rng.normal(60, 15, (64, 64)) + (label > 0) * 120, 0, 255)
      Image.fromarray(image.astype(np.uint8)).save(root / split / 'image' / f'{k}.png')
      Image.fromarray(label).save(root / split / 'label' / f'{k}.png')
      k += 1


def test_both_stages_select_on_val_and_report_on_test(tmp_path):
  _flat_folder(tmp_path / 'data')
  out = tmp_path / 'out'
  gpu_paper_octa500.main([
      '--data_root', str(tmp_path / 'data'), '--out', str(out), '--model', 'cosnet_tiny',
      '--dtype', 'float32', '--epochs', '3', '--refine_epochs', '2', '--eval_every', '2',
      '--workers', '1'])
  run = json.loads((out / 'run.json').read_text())
  # 8 training images, batch 8: one step per epoch
  assert (run['steps_planned'], run['steps_done']) == (3, 3)
  assert (run['refine_steps_planned'], run['refine_steps_done']) == (2, 2)
  assert run['selected_step'] in (2, 3) and run['refine_selected_step'] in (0, 2)
  assert run['stage'] == 'stage 1 + refinement'
  hist = [json.loads(line) for line in (out / 'history.jsonl').read_text().splitlines()]
  vals = [h for h in hist if 'val/dice' in h]
  assert [(h['stage'], h['step']) for h in vals] == [
      ('stage1', 2), ('stage1', 3), ('stage2', 0), ('stage2', 2)]
  # Stage 2 starts as the identity on the selected stage-1 map.
  assert abs(vals[2]['val/dice'] - run['val_dice']) < 1e-2
  # The refiner's read-outs: none of its weights moved at the start, and its
  # output is then the coarse map (the identity start); training moves them.
  assert vals[2]['refiner_rel_change'] == 0.0
  assert vals[2]['val_mean_abs_refined_minus_coarse'] < 1e-3
  assert vals[3]['refiner_rel_change'] > 0.0
  assert 'refiner_rel_change' not in vals[0]
  # ... and competes in the selection (first maximum wins).
  assert run['refine_selected_step'] == max(vals[2:], key=lambda h: h['val/dice'])['step']
  refined = json.loads((out / 'metrics.json').read_text())
  coarse = json.loads((out / 'metrics_coarse.json').read_text())
  for summary in (refined, coarse):
    text = json.dumps(summary)
    assert 'dice' in text and 'NaN' not in text
  assert '| refined' in (out / 'metrics.md').read_text()
  assert (out / 'roc.png').stat().st_size > 0


def test_stage2_from_a_stored_stage1_with_config_overrides(tmp_path):
  _flat_folder(tmp_path / 'data')
  common = ['--data_root', str(tmp_path / 'data'), '--model', 'cosnet_tiny',
            '--dtype', 'float32', '--eval_every', '2', '--workers', '1']
  stored = tmp_path / 'stage1.msgpack'
  gpu_paper_octa500.main(common + ['--out', str(tmp_path / 'a'), '--epochs', '2',
                                   '--stage1_out', str(stored)])
  first = json.loads((tmp_path / 'a' / 'run.json').read_text())
  assert stored.stat().st_size > 0
  gpu_paper_octa500.main(common + ['--out', str(tmp_path / 'b'), '--stage1_from', str(stored),
                                   '--refine_epochs', '2',
                                   '--set', 'refine.optimizer.weight_decay=0.0'])
  second = json.loads((tmp_path / 'b' / 'run.json').read_text())
  # Stage 1 is not trained again: the stored selection, same val Dice.
  assert second['steps_done'] == 0 and second['stage1_from'] == str(stored)
  assert second['val_dice'] == first['val_dice']
  assert second['config_sets'] == ['refine.optimizer.weight_decay=0.0']
  hist = [json.loads(line) for line in (tmp_path / 'b' / 'history.jsonl').read_text().splitlines()]
  stage2 = [h for h in hist if h['stage'] == 'stage2' and 'val/dice' in h]
  # The last conv's kernel starts at zero and is what training moves.
  assert stage2[0]['refiner_last_kernel_norm'] == 0.0
  assert stage2[-1]['refiner_last_kernel_norm'] > 0.0
  # Variables of another model size are refused with the file and array named.
  with pytest.raises(SystemExit, match=r'stage1.msgpack: not stage-1 variables of '
                                       r'cosnet_tiny \(.*has shape'):
    gpu_paper_octa500.main(common + ['--out', str(tmp_path / 'd'), '--stage1_from', str(stored),
                                     '--set', 'model.embed_dim=16'])
  with pytest.raises(SystemExit, match='refine.optimizer.weight_decy'):
    gpu_paper_octa500.main(common + ['--out', str(tmp_path / 'c'),
                                     '--set', 'refine.optimizer.weight_decy=0'])


def test_relative_change_is_the_global_norm_ratio():
  p0 = {'a': np.array([3.0, 0.0]), 'b': {'c': np.array([[4.0]])}}
  p1 = {'a': np.array([3.0, 1.0]), 'b': {'c': np.array([[4.0]])}}
  assert gpu_paper_octa500.relative_change(p0, p0) == 0.0
  np.testing.assert_allclose(gpu_paper_octa500.relative_change(p1, p0), 1 / 5)


def test_time_budget_stops_a_stage_and_zero_refine_epochs_skip_stage2(tmp_path):
  _flat_folder(tmp_path / 'data')
  out = tmp_path / 'out'
  gpu_paper_octa500.main([
      '--data_root', str(tmp_path / 'data'), '--out', str(out), '--model', 'cosnet_tiny',
      '--dtype', 'float32', '--epochs', '3', '--time_budget', '0', '--workers', '1'])
  # (the same stage-1 program as the test above: a compilation-cache hit)
  run = json.loads((out / 'run.json').read_text())
  assert (run['steps_planned'], run['steps_done'], run['selected_step']) == (3, 1, 1)
  assert 'refine_steps_done' not in run
  assert run['stage'].startswith('stage 1 (coarse)')
  assert '| coarse' in (out / 'metrics.md').read_text()


def test_non_finite_loss_stops_the_stage_and_keeps_the_selection():
  seen = []

  def step_fn(state, batch):
    del batch
    return state + 1, {'loss': np.float32(0.5), 'finite': np.float32(state + 1 < 60)}

  def validate(step, state):
    seen.append((step, state))

  class Hist:
    lines = []

    def write(self, line):
      self.lines.append(line)

    def flush(self):
      pass

  state, done, _, _, failure = gpu_paper_octa500.train_stage(
      'stage1', step_fn, 0, iter(range(1000)), 1000, eval_every=25, time_budget=1e9,
      validate=validate, hist=Hist())
  # steps 51-100 are logged together at step 100, where the failure is seen
  assert failure == 'non-finite loss before step 100'
  assert (state, done) == (100, 100)
  assert seen == [(25, 25), (50, 50), (75, 75), (100, 100)]
