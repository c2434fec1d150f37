"""The real train_and_evaluate on a tiny config (flax-examples style):
loss goes down, checkpoints and reports are written, a resumed run continues
from the saved step (memory bank restored) and ends bit-identical to an
uninterrupted run, a changed model config is refused, NaN stops cleanly."""

import json
import os
import pathlib
import signal

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from cosnet_jax import config as config_lib
from cosnet_jax import sharding
from cosnet_jax.data import source, testing
from cosnet_jax.errors import ConfigError
from cosnet_jax.evaluation import metrics as metrics_lib
from cosnet_jax.inference import evaluate_split
from cosnet_jax.inference import trained as trained_lib
from cosnet_jax.train import compiled, loop, progress, startup
from tiny_config import tiny_config


def read_history(workdir):
  lines = (pathlib.Path(workdir) / 'history.jsonl').read_text().splitlines()
  return [json.loads(l) for l in lines]


def restore_raw(workdir, stage, step):
  path = pathlib.Path(workdir) / 'checkpoints' / stage / 'latest' / str(step) / 'default'
  return ocp.StandardCheckpointer().restore(path)


@pytest.fixture
def full_run(tiny_run):
  return tiny_run


def test_loss_decreases_and_outputs_are_written(full_run):
  workdir, result = full_run
  hist = [h for h in read_history(workdir) if h['stage'] == 'stage1' and 'loss' in h]
  assert [h['step'] for h in hist] == list(range(1, 7))
  seg = [h['seg_thick'] + h['seg_thin'] for h in hist]
  assert np.mean(seg[-2:]) < np.mean(seg[:2])
  assert all(h['anchors_thick'] > 0 for h in hist)
  assert any('val/dice' in h for h in read_history(workdir))
  ck = workdir / 'checkpoints'
  assert sorted(p.name for p in (ck / 'stage1' / 'latest').iterdir() if p.name.isdigit()) == ['3', '6']
  assert (ck / 'stage1' / 'best.json').exists()
  assert (ck / 'stage2' / 'latest' / '2').exists()
  # Stage 2 is validated before its first step: the refiner starts as the
  # identity on the stage-1 map, so its val Dice there is stage 1's best.
  s2_val = [h for h in read_history(workdir) if h['stage'] == 'stage2' and 'val/dice' in h]
  assert [h['step'] for h in s2_val] == [0, 2]
  s1_best = json.loads((ck / 'stage1' / 'best.json').read_text())['score']
  assert abs(s2_val[0]['val/dice'] - s1_best) < 1e-2
  # ... and the start competes: the best stage-2 step is the first maximum.
  s2_best = json.loads((ck / 'stage2' / 'best.json').read_text())['step']
  first_max = max(s2_val, key=lambda h: h['val/dice'])['step']
  assert s2_best == first_max
  assert list(workdir.glob('events.out.tfevents.*'))
  report = workdir / 'eval' / 'synthetic_octa-test'
  metrics = json.loads((report / 'metrics.json').read_text())
  assert len(metrics['per_image']) == 4
  assert set(metrics['summary']) >= {'auc', 'acc', 'sen', 'spe', 'dice', 'iou',
                                     'kappa', 'fdr', 'gmean', 'cldice'}
  assert (report / 'roc.png').exists() and (report / 'metrics_coarse.json').exists()
  assert result['final']['refined']['summary']['dice']['mean'] == pytest.approx(
      np.mean([m['dice'] for m in metrics['per_image']]))


def test_training_learns(data_cache, tmp_path):
  """40 steps on whole 64 px images lift test AUC well above the untrained
  model's (measured: 0.62 against 0.51-0.55 for inits of seeds 0-2)."""
  config = tiny_config(data_cache, steps=40, refine_steps=0)
  config.optimizer.learning_rate = 3e-3
  config.contrast.seg_loss, config.contrast.weight = 'bce_dice', 0.0
  config.data.crop_size = 0
  config.train.eval_every = config.train.checkpoint_every = 40
  result = loop.train_and_evaluate(config, str(tmp_path))
  learned = result['final']['refined']['summary']['auc']['mean']
  mesh = sharding.make_mesh()
  init = compiled.stage1_functions(config, mesh, 40).init(jax.random.PRNGKey(config.seed))
  untrained = trained_lib.TrainedModel(config, jax.device_get(
      {'params': init.params, 'batch_stats': init.batch_stats}), None, {}, 'init')
  pred = evaluate_split.model_maps(untrained, evaluate_split.dataset_config(untrained), 'test')
  before = np.mean([metrics_lib.image_metrics(r['coarse'], r['mask'], None)['auc']
                    for r in pred['results']])
  assert learned > before + 0.04, (learned, before)


def test_resume_is_bit_identical_and_restores_the_bank(full_run, data_cache, tmp_path):
  workdir, _ = full_run
  config = tiny_config(data_cache)
  config.optimizer.learning_rate = 3e-3
  config.refine.num_steps = 0
  config.eval.final_split = ''
  config.train.max_steps_per_run = 3
  with pytest.raises(loop.RunSliceDone):
    loop.train_and_evaluate(config, str(tmp_path))
  half = restore_raw(tmp_path, 'stage1', 3)
  assert int(half['step']) == 3
  init_ptr = np.zeros_like(half['bank_thick']['pixel_ptr'])
  assert np.any(half['bank_thick']['pixel_filled'] != init_ptr)
  loop.train_and_evaluate(config, str(tmp_path))  # resumes at step 3
  hist = [h['step'] for h in read_history(tmp_path) if 'loss' in h]
  assert hist == list(range(1, 7))  # 4..6 after the resume, no step repeated
  resumed = restore_raw(tmp_path, 'stage1', 6)
  straight = restore_raw(workdir, 'stage1', 6)
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_shape_changing_config_is_refused(full_run, data_cache):
  workdir, _ = full_run
  config = tiny_config(data_cache)
  config.model.embed_dim = 16
  with pytest.raises(ConfigError, match='model.embed_dim'):
    loop.train_and_evaluate(config, str(workdir))


def test_bad_batch_size_is_named(data_cache, tmp_path):
  config = tiny_config(data_cache)
  config.train.batch_size = 6
  with pytest.raises(ConfigError, match='train.batch_size=6'):
    loop.train_and_evaluate(config, str(tmp_path))


def _stage1_with(wrap):
  """Builders whose stage-1 train step is `wrap(train_step)`."""
  def stage1(*args):
    fns = compiled.stage1_functions(*args)
    return fns._replace(train_step=wrap(fns.train_step))
  return compiled.Builders(stage1=stage1)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(full_run, data_cache, tmp_path):
  # The step itself refuses non-finite updates (test_train_step); here the
  # loop must stop, name the step and keep the last good checkpoint.
  def with_nan_at_step_2(train_fn):
    calls = []
    def step(state, batch):
      new_state, metrics = train_fn(state, batch)
      calls.append(1)
      if len(calls) == 2:
        metrics = dict(metrics, finite=metrics['finite'] * 0)
        new_state = state  # what the guarded step returns
      return new_state, metrics
    return step

  config = tiny_config(data_cache)
  config.optimizer.learning_rate = 3e-3
  config.refine.num_steps = 0
  config.eval.final_split = ''
  config.train.checkpoint_every = 1
  with pytest.raises(loop.NonFiniteLossError, match='non-finite loss at step 2'):
    loop.train_and_evaluate(config, str(tmp_path), _stage1_with(with_nan_at_step_2))
  latest = pathlib.Path(tmp_path) / 'checkpoints' / 'stage1' / 'latest'
  assert sorted(p.name for p in latest.iterdir() if p.name.isdigit()) == ['1']
  state = restore_raw(tmp_path, 'stage1', 1)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state['params']))


def test_sigterm_saves_a_checkpoint_before_exiting(full_run, data_cache, tmp_path):
  def signal_after_step_2(train_fn):
    calls = []
    def step(state, batch):
      calls.append(1)
      if len(calls) == 2:  # a real SIGTERM to this process, mid-run
        os.kill(os.getpid(), signal.SIGTERM)
      return train_fn(state, batch)
    return step

  config = tiny_config(data_cache)
  config.optimizer.learning_rate = 3e-3
  config.refine.num_steps = 0
  config.eval.final_split = ''
  with pytest.raises(KeyboardInterrupt, match=r'stopped by SIGTERM \(step 2\)'):
    loop.train_and_evaluate(config, str(tmp_path), _stage1_with(signal_after_step_2))
  latest = pathlib.Path(tmp_path) / 'checkpoints' / 'stage1' / 'latest'
  assert sorted(p.name for p in latest.iterdir() if p.name.isdigit()) == ['2']


def test_init_from_another_run_starts_from_its_best_stage1(full_run, data_cache, tmp_path):
  workdir, _ = full_run
  config = tiny_config(data_cache)
  config.optimizer.learning_rate = 3e-3
  config.model.init_from = str(workdir)
  mesh = sharding.make_mesh()
  _, stage = loop.build_stage1(config, tmp_path, mesh, startup.plan(config))
  best, _, _ = trained_lib.load_variables(workdir, 'best')
  got = jax.device_get({'params': stage.state.params, 'batch_stats': stage.state.batch_stats})
  for a, b in zip(jax.tree.leaves(best), jax.tree.leaves(got)):
    np.testing.assert_array_equal(a, b)
  assert int(jax.device_get(stage.state.step)) == 0      # a new run, fresh optimizer
  config.model.init_from = str(tmp_path / 'nothing_here')
  with pytest.raises(ConfigError, match='init_from'):
    loop.build_stage1(config, tmp_path / 'other', mesh, startup.plan(config))


def test_a_sliced_training_split_sets_the_epoch_length(data_cache, tmp_path):
  # 'train[:4]' (a TFDS split expression, as 'train+val') is not a key of the
  # dataset's split info; the step count per epoch comes from its 4 examples.
  config = tiny_config(data_cache)
  config.optimizer.learning_rate = 3e-3
  config.data.train_split = 'train[:4]'
  config.train.num_steps, config.train.num_epochs = -1, 3   # batch 4: 1 step per epoch
  config.refine.num_steps, config.refine.num_epochs = -1, 2
  mesh = sharding.make_mesh()
  assert source.split_num_examples(config.data, 'train[:4]') == 4
  assert source.split_num_examples(config.data, 'train+val') == 12
  _, stage = loop.build_stage1(config, tmp_path, mesh, startup.plan(config))
  assert stage.num_steps == 3
  config.data.train_split = 'train'
  _, stage = loop.build_stage1(config, tmp_path / 'whole', mesh, startup.plan(config))
  assert stage.num_steps == 6                               # 8 examples: 2 steps per epoch


def test_a_mixture_validates_each_dataset_and_resumes_bit_identical(data_cache, tmp_path):
  """Synthetic OCTA + a folder (weights 1 : 1): both validated, selection on
  their mean, and a run cut after 3 steps ends where an uninterrupted one does."""
  folder = testing.write_flat(str(tmp_path / 'folder'), splits=(('train', 4), ('val', 2)),
                              size=48, seed=3)

  def config():
    c = tiny_config(data_cache)
    c.optimizer.learning_rate = 3e-3
    c.refine.num_steps = 0
    c.eval.final_split = ''
    c.data.mix.folder = config_lib.mix_source('octa_folder', folder, weight=1.0)
    return c
  loop.train_and_evaluate(config(), str(tmp_path / 'straight'))
  hist = [h for h in read_history(tmp_path / 'straight') if 'val/dice' in h]
  assert hist and all({'val/synthetic_octa/dice', 'val/folder/dice'} <= set(h) for h in hist)
  for h in hist:
    assert h['val/dice'] == pytest.approx(
        (h['val/synthetic_octa/dice'] + h['val/folder/dice']) / 2)
  best = json.loads((tmp_path / 'straight' / 'checkpoints' / 'stage1' / 'best.json').read_text())
  assert best['score'] == pytest.approx(max(h['val/dice'] for h in hist))
  sliced = config()
  sliced.train.max_steps_per_run = 3
  with pytest.raises(loop.RunSliceDone):
    loop.train_and_evaluate(sliced, str(tmp_path / 'sliced'))
  loop.train_and_evaluate(config(), str(tmp_path / 'sliced'))
  a = restore_raw(tmp_path / 'straight', 'stage1', 6)
  b = restore_raw(tmp_path / 'sliced', 'stage1', 6)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_time_budget_checkpoints_and_stops(data_cache, tmp_path):
  config = tiny_config(data_cache)
  config.optimizer.learning_rate = 3e-3
  config.refine.num_steps = 0
  config.eval.final_split = ''
  config.train.time_budget_s = 1e-3        # spent after the first step
  with pytest.raises(loop.RunSliceDone, match=r'train.time_budget_s.*step 1\)'):
    loop.train_and_evaluate(config, str(tmp_path))
  latest = pathlib.Path(tmp_path) / 'checkpoints' / 'stage1' / 'latest'
  assert sorted(p.name for p in latest.iterdir() if p.name.isdigit()) == ['1']


def test_progress_eta_format():
  assert progress.format_duration(59) == '00:00:59'
  assert progress.format_duration(3 * 86400 + 3723) == '3d 01:02:03'
  # The first (compiling) step is left out of the rate: 10 s for steps 2..6.
  assert progress.eta_seconds(110.0, 100.0, 1, 6, 16) == pytest.approx(20.0)
  assert progress.eta_seconds(110.0, None, 0, 1, 16) is None
