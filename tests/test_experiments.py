"""experiments/summarize.py: tables from result folders (row d from row e's
stage-1 metrics, seeds averaged, seed spread reported)."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

from cosnet_jax.evaluation.metrics import image_metrics

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name):
  spec = importlib.util.spec_from_file_location(name, ROOT / 'experiments' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _metrics(dice):
  summary = {m: {'mean': 0.5, 'std': 0.1} for m in
             ('auc', 'acc', 'sen', 'spe', 'dice', 'iou', 'kappa', 'fdr', 'gmean', 'cldice')}
  summary['dice'] = {'mean': dice, 'std': 0.02}
  return {'summary': summary, 'pooled': {}, 'per_image': []}


def test_table_rows_seeds_and_row_d(tmp_path):
  summarize = _load('summarize')
  for tag, dice, coarse in (('e-s0', 0.80, 0.78), ('e-s1', 0.84, 0.80), ('a-s0', 0.70, None)):
    run = tmp_path / 'octa500_3m' / tag
    run.mkdir(parents=True)
    (run / 'metrics.json').write_text(json.dumps(_metrics(dice)))
    if coarse is not None:
      (run / 'metrics_coarse.json').write_text(json.dumps(_metrics(coarse)))
    (run / 'run.json').write_text(json.dumps({'wall_s': 600}))
  rows = summarize.collect('octa500_3m', tmp_path)
  assert sorted(rows) == ['a', 'd', 'e']
  assert [r[1]['summary']['dice']['mean'] for r in rows['d']] == [0.78, 0.80]
  text = summarize.table('octa500_3m', summarize.ROW_NAMES, tmp_path)
  line_e = next(l for l in text.splitlines() if l.startswith('| (e)') and '±' in l)
  assert '0.8200 ± 0.0200' in line_e                    # mean of the two seeds
  spread = next(l for l in text.splitlines() if l.startswith('| (e)') and 's0:' in l)
  assert '0.0283' in spread and '10.0' in spread         # stdev(0.80, 0.84); minutes


def test_other_experiments_get_a_stage1_row(tmp_path):
  summarize = _load('summarize')
  for tag, dice, coarse in (('finetune-s0', 0.88, 0.89), ('finetune-s1', 0.86, 0.87)):
    run = tmp_path / 'synthetic_to_real' / tag
    run.mkdir(parents=True)
    (run / 'metrics.json').write_text(json.dumps(_metrics(dice)))
    (run / 'metrics_coarse.json').write_text(json.dumps(_metrics(coarse)))
  rows = summarize.collect('synthetic_to_real', tmp_path)
  assert sorted(rows) == ['finetune', 'finetune, stage 1']
  assert [r[1]['summary']['dice']['mean'] for r in rows['finetune, stage 1']] == [0.89, 0.87]


def test_finetune_names_the_missing_pretraining_seed(tmp_path):
  run = _load('run')
  with pytest.raises(SystemExit, match='--seed 3 first'):
    run.main(['synthetic_to_real', '--part', 'finetune', '--seed', '1',
              '--pretrain_seed', '3', '--runs_dir', str(tmp_path),
              '--results_dir', str(tmp_path / 'r')])
  with pytest.raises(SystemExit, match='applies to --part finetune'):
    run.main(['synthetic_to_real', '--part', 'zero_shot', '--pretrain_seed', '3',
              '--runs_dir', str(tmp_path), '--results_dir', str(tmp_path / 'r')])


def test_run_refuses_row_d_and_bad_set():
  run = _load('run')
  with pytest.raises(SystemExit, match='row e'):
    run.main(['octa500_3m', '--row', 'd'])
  with pytest.raises(SystemExit, match='key=value'):
    run._parse_sets(['train.num_steps'])


def test_run_json_records_the_machine_speed():
  """Machines with one CPU name differed 3x in speed: run.json says which."""
  hw = _load('run')._hardware()
  assert hw['matmul_gflops'] > 0 and isinstance(hw['cpu_isa'], str)
  assert hw['cpus_usable'] >= 1
  assert isinstance(hw['glibc_hugepages'], bool)


def test_collect_only_names_a_missing_run(tmp_path):
  run = _load('run')
  with pytest.raises(SystemExit, match='holds no training run'):
    run.main(['octa500_3m', '--row', 'a', '--seed', '7', '--collect_only',
              '--runs_dir', str(tmp_path), '--results_dir', str(tmp_path / 'r')])


def test_diagnose_border_band_dice_and_bad_parts(tmp_path):
  diagnose = _load('diagnose')
  gt = np.zeros((5, 6), bool)
  gt[:, 2:4] = True                                   # a 2-pixel-wide vessel
  band = diagnose._border_band(gt)
  assert band[:, 1:5].all() and not band[:, [0, 5]].any()
  rng = np.random.default_rng(0)
  mask = (rng.random((20, 20)) > 0.8).astype(np.float32)
  prob = np.clip(mask * 0.5 + rng.random((20, 20)) * 0.5, 0, 1)
  for thr in ('otsu', 0.4):                           # the sweep's Dice = the report's
    assert diagnose._dice(prob, mask, thr) == pytest.approx(
        image_metrics(prob, mask, None, threshold=thr)['dice'], abs=1e-12)
  with pytest.raises(SystemExit, match='unknown'):
    diagnose.main([str(tmp_path), '--parts', 'fit,speed'])


def test_accel_run_builds_run_py_config():
  """experiments/accel_run.py trains exactly the config run.py would."""
  accel, run = _load('accel_run'), _load('run')
  job = accel.parse_job('lr:e:2:optimizer.learning_rate=2e-3,data.clahe=false')
  assert job == {'name': 'lr', 'row': 'e', 'seed': 2,
                 'sets': {'optimizer.learning_rate': '2e-3', 'data.clahe': 'false'}}
  c, _ = accel.build_config(job['row'], job['seed'], job['sets'])
  assert c.seed == 2 and c.optimizer.learning_rate == 2e-3 and c.data.clahe is False
  assert c.train.num_steps == run.BUDGET['train.num_steps']
  assert c.contrast.seg_loss == run.BUDGET['contrast.seg_loss']
  a, _ = accel.build_config('a', 0, {})
  assert a.contrast.weight == 0.0 and a.refine.num_steps == 0
  with pytest.raises(SystemExit, match='train.no_such_field'):
    accel.build_config('e', 0, {'train.no_such_field': '1'})
  with pytest.raises(SystemExit, match='NAME:ROW:SEED'):
    accel.parse_job('e:0')


def test_tta_table_reads_the_diagnose_files(tmp_path):
  summarize = _load('summarize')
  mode = lambda v, t, better=None: {
      'coarse': {'val': v, 'test': t},
      **({'test_images_better': {'coarse': better}} if better is not None else {})}
  (tmp_path / 'octa500_3m_e-s0.json').write_text(json.dumps({
      'tta': {'none': mode(0.80, 0.81), 'hflip': mode(0.82, 0.83, 40),
              'flips': mode(0.84, 0.86, 50)}, 'tta_test_images': 50}))
  text = summarize.tta_table(tmp_path)
  line = next(l for l in text.splitlines() if l.startswith('| octa500_3m_e-s0'))
  assert '0.8000 / 0.8100' in line and '0.8400 / 0.8600 (50/50)' in line
  assert line.endswith('+0.0500 |')
  assert summarize.tta_table(tmp_path / 'none') == ''


def test_comparison_with_row_a_welch_and_images_better(tmp_path):
  """Welch's t matches scipy's unequal-variance t-test; images better count
  each image's Dice averaged over a row's seeds."""
  from scipy import stats
  summarize = _load('summarize')
  x, y = [0.90, 0.88, 0.91], [0.87, 0.88, 0.86]
  t, df = summarize.welch(x, y)
  ref = stats.ttest_ind(x, y, equal_var=False)
  np.testing.assert_allclose(t, ref.statistic, rtol=1e-12)
  np.testing.assert_allclose(df, ref.df, rtol=1e-12)
  assert summarize.welch([0.9], y) is None

  def run(tag, per_image):
    metrics = _metrics(float(np.mean(list(per_image.values()))))
    metrics['per_image'] = [{'id': k, 'dice': v} for k, v in per_image.items()]
    folder = tmp_path / 'octa500_3m' / tag
    folder.mkdir(parents=True)
    (folder / 'metrics.json').write_text(json.dumps(metrics))

  # image '1': row e averages 0.85 against a's 0.80 (better); image '2': 0.70
  # against 0.75 (worse), though e-s1 alone beats a on it.
  run('a-s0', {'1': 0.80, '2': 0.75})
  run('e-s0', {'1': 0.90, '2': 0.60})
  run('e-s1', {'1': 0.80, '2': 0.80})
  text = summarize.comparison_table(summarize.collect('octa500_3m', tmp_path),
                                    names=summarize.ROW_NAMES)
  line = next(l for l in text.splitlines() if l.startswith('| (e)'))
  assert '| 2 vs 1 |' in line and '+0.0000' in line and '1 of 2' in line
  assert summarize.comparison_table({'e': []}) == ''

  # A probe's rows against the same rows of a reference folder that has no
  # row (a): the probe's e (seed means 0.75, 0.80; images 0.85, 0.70) against
  # the reference's e (0.77, 0.75; images 0.81, 0.71).
  probe = summarize.collect('octa500_3m', tmp_path)
  ref_root = tmp_path / 'ref'
  for tag, per_image in (('e-s0', {'1': 0.82, '2': 0.72}), ('e-s1', {'1': 0.80, '2': 0.70})):
    metrics = _metrics(float(np.mean(list(per_image.values()))))
    metrics['per_image'] = [{'id': k, 'dice': v} for k, v in per_image.items()]
    (ref_root / 'octa500_3m' / tag).mkdir(parents=True)
    (ref_root / 'octa500_3m' / tag / 'metrics.json').write_text(json.dumps(metrics))
  text = summarize.baseline_table(probe, summarize.collect('octa500_3m', ref_root),
                                  'probes/ref', summarize.ROW_NAMES)
  lines = [l for l in text.splitlines() if l.startswith('| (')]
  assert len(lines) == 1 and lines[0].startswith('| (e)')
  assert '| 2 vs 2 |' in lines[0] and '+0.0150' in lines[0] and '1 of 2' in lines[0]
  assert summarize.baseline_table(probe, {}, 'none') == ''


def test_benchmark_set_overrides_config_fields_and_names_a_bad_key():
  bench = _load('benchmark')
  args = bench.argparse.Namespace(dtype='', remat=None, batch=0, crop=None,
                                  set=['model.head_width=32', 'model.stage_widths=(8, 16, 32, 128)',
                                       'data.crop_size=128', 'model.upsample=bilinear'])
  c = bench.load_config('cpu', args)
  assert c.model.head_width == 32 and tuple(c.model.stage_widths) == (8, 16, 32, 128)
  assert c.data.crop_size == 128 and c.model.upsample == 'bilinear'
  for bad, named in (('model.head_widht=32', "no field 'model.head_widht'"),
                     ('modle.head_width=32', "no field 'modle'"),
                     ('model.head_width', 'expected key=value')):
    args.set = [bad]
    with pytest.raises(ValueError, match=named):
      bench.load_config('cpu', args)


def test_cross_domain_compares_rows_per_target_against_the_first():
  cd = _load('cross_domain')
  assert cd.parse_runs(['e=/r/e0,/r/e1', 'f=/r/f0']) == {'e': ['/r/e0', '/r/e1'],
                                                          'f': ['/r/f0']}
  with pytest.raises(SystemExit, match='x/y'):
    cd.parse_runs(['x/y'])
  # WORKDIR@MODE: the same run with test-time augmentation, checked up front.
  assert cd.split_run('/r/e0') == ('/r/e0', 'none')
  assert cd.split_run('/r/a@b/e0@flips_shifts') == ('/r/a@b/e0', 'flips_shifts')
  assert cd.split_run('/r/a@b/e0') == ('/r/a@b/e0', 'none')
  with pytest.raises(SystemExit, match="'rot90'"):
    cd.split_run('/r/e0@rot90')
  run = lambda final, coarse=None: {'final': final, 'coarse': coarse or final}
  results = {
      'e': {'6m': [run([0.80, 0.70]), run([0.82, 0.72], [0.9, 0.9])]},
      'f': {'6m': [run([0.85, 0.69]), run([0.87, 0.71])]},
  }
  table = cd.compare(results, 'final')
  e, f = table
  assert (e['row'], e['target'], e['seeds'], e['vs_first']) == ('e', '6m', 2, None)
  np.testing.assert_allclose(e['per_seed'], [0.75, 0.77])
  np.testing.assert_allclose(f['vs_first']['diff'], 0.78 - 0.76)
  # image 0: f 0.86 > e 0.81; image 1: f 0.70 < e 0.71
  assert (f['vs_first']['images_better'], f['vs_first']['images']) == (1, 2)
  assert f['vs_first']['welch_t'] > 0
  assert cd.compare(results, 'coarse')[0]['per_seed'][1] == pytest.approx(0.9)
  text = cd.markdown(table)
  assert '| 6m | f | 2 | 0.7700 / 0.7900 |' in text and '1 of 2' in text


def test_cross_domain_reuse_reads_earlier_results_and_evaluates_the_rest(
    tmp_path, monkeypatch):
  cd = _load('cross_domain')
  shared = tmp_path / 'shared'
  (shared / 'OCTA-500-official-sample').mkdir(parents=True)
  run = lambda final: {'ids': ['a', 'b'], 'final': final, 'coarse': final}
  earlier = {'per_image': {'e': {'6m': [dict(run([0.80, 0.70]), workdir='/r/e0')]}}}
  (tmp_path / 'earlier.json').write_text(json.dumps(earlier))
  evaluated = []

  def fake_evaluate(workdir, target, shared_dir):
    evaluated.append((workdir, target))
    return run([0.85, 0.69])
  monkeypatch.setattr(cd, 'evaluate', fake_evaluate)
  out = tmp_path / 'out.json'
  cd.main(['--runs', 'e=/r/e0', '--runs', 'f=/r/f0', '--targets', '6m',
           '--shared', str(shared), '--reuse', str(tmp_path / 'earlier.json'),
           '--out', str(out)])
  assert evaluated == [('/r/f0', '6m')]          # e-0 on 6m came from earlier.json
  result = json.loads(out.read_text())
  f = next(e for e in result['final'] if e['row'] == 'f')
  np.testing.assert_allclose(f['vs_first']['diff'], 0.77 - 0.75)
  assert result['per_image']['e']['6m'][0]['workdir'] == '/r/e0'
  (tmp_path / 'bad.json').write_text('{"rows": {}}')
  with pytest.raises(SystemExit, match='bad.json'):
    cd.main(['--runs', 'e=/r/e0', '--targets', '6m', '--shared', str(shared),
             '--reuse', str(tmp_path / 'bad.json'), '--out', str(out)])


def test_diagnose_recomputed_batch_stats_are_the_mean_of_batch_statistics():
  """Precise BN: mean over batches of each batch's mean and biased variance
  (numpy reference), whatever the stored running statistics; census counts
  channels whose running variance is below eps."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  diagnose = _load('diagnose')

  class Toy(nn.Module):
    @nn.compact
    def __call__(self, x, train):
      return nn.BatchNorm(use_running_average=not train, momentum=0.9, name='bn')(x)

  model = Toy()
  rng = np.random.default_rng(0)
  batches = [rng.normal(i, 1 + i, size=(4, 3, 3, 2)).astype(np.float32) for i in range(3)]
  variables = model.init(jax.random.PRNGKey(0), batches[0], train=False)
  zeros = jax.tree.map(jnp.zeros_like, variables['batch_stats'])

  def stats_of_batch(x):
    _, upd = model.apply({'params': variables['params'], 'batch_stats': zeros}, x,
                         train=True, mutable=['batch_stats'])
    return upd['batch_stats']

  got = diagnose.recompute_batch_stats(stats_of_batch, batches, 0.9)
  flat = [b.reshape(-1, 2).astype(np.float64) for b in batches]
  np.testing.assert_allclose(got['bn']['mean'], np.mean([f.mean(0) for f in flat], 0),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got['bn']['var'], np.mean([f.var(0) for f in flat], 0),
                             rtol=1e-4)
  with pytest.raises(ValueError, match='no batches'):
    diagnose.recompute_batch_stats(stats_of_batch, [], 0.9)
  census = diagnose.bn_census({'a': {'bn': {'mean': np.zeros(3), 'var': np.array([0., 1e-7, 1.])}},
                               'b': {'mean': np.zeros(2), 'var': np.ones(2)}}, 1e-5)
  assert census['layers'] == {'a/bn': {'channels': 3, 'below_eps': 2},
                              'b': {'channels': 2, 'below_eps': 0}}
  assert (census['channels'], census['below_eps']) == (5, 2)


def test_diagnose_weight_census_counts_collapsed_kernels_and_scales():
  diagnose = _load('diagnose')
  params = {'encoder': {'conv': {'kernel': np.array([0.0, 1e-6, 0.5, -0.2])},
                        'bn': {'scale': np.array([1e-4, 1.0]), 'bias': np.zeros(2)}},
            'head': {'conv': {'kernel': np.array([-1e-5, 0.3]), 'bias': np.zeros(1)}}}
  c = diagnose.weight_census(params)
  assert c['modules']['encoder'] == {'kernels_below': 0.5, 'kernels': 4,
                                     'scales_below': 0.5, 'scales': 2}
  assert c['modules']['head']['kernels_below'] == 0.5
  assert c['modules']['head']['scales_below'] is None
  assert c['kernels_below'] == pytest.approx(3 / 6) and c['scales_below'] == 0.5


def test_profile_step_classifies_conv_passes_and_counts_their_flops():
  """profile_step reads the XLA:CPU trace back per HLO instruction: a conv's
  forward, input gradient and kernel gradient are told apart and each is
  counted at 2 x N x H x W x 9 x Cin x Cout FLOPs."""
  import jax
  import jax.numpy as jnp
  prof = _load('profile_step')
  n, h, w, cin, cout = 2, 24, 24, 8, 16

  def loss(x, k):
    y = jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME',
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    z = y.reshape(-1, cout) @ jnp.full((cout, 8), 0.1)      # a dot (YNNPACK fusion on CPU)
    return jnp.sum(jnp.tanh(y)) + jnp.sum(z * z)

  x = jnp.ones((n, h, w, cin)) * 0.1
  k = jnp.ones((3, 3, cin, cout)) * 0.01
  from cosnet_jax.models import fast_conv
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1)),
                     compiler_options=fast_conv.xla_compiler_options()).lower(x, k).compile()
  hlo = prof.parse_hlo(compiled.as_text())
  events, walls, overlap = prof.trace_ops(lambda: compiled(x, k), prof.leaf_names(hlo),
                                          steps=2)
  assert len(walls) == 2 and events
  assert overlap['summed_ms'] == pytest.approx(sum(map(sum, events.values())) / 1e3 / 2)
  # (union <= sum up to the rounding of the sweep's subtractions)
  assert 0 <= overlap['two_or_more_ms'] <= overlap['one_or_more_ms']
  assert 0 < overlap['one_or_more_ms'] <= overlap['summed_ms'] * (1 + 1e-9)
  assert overlap['threads'] >= 1
  res = prof.summarize(events, hlo, steps=2)
  classes = res['classes']
  expected = 2.0 * n * h * w * 9 * cin * cout / 1e9
  for cls in ('conv fwd', 'conv input-grad', 'conv kernel-grad'):
    assert cls in classes, (cls, sorted(classes))
    assert classes[cls]['gflop'] == pytest.approx(expected, rel=1e-6), cls
    assert classes[cls]['ms'] > 0
  # the dot's forward and its input gradient (d/dy of z*z through z = y m)
  dots = [c for name, c in classes.items() if name.startswith('dot')]
  assert dots and sum(c['gflop'] for c in dots) == pytest.approx(
      2 * 2.0 * n * h * w * cout * 8 / 1e9, rel=1e-6)
  assert sum(c['share'] for c in classes.values()) == pytest.approx(1.0)
  with pytest.raises(FileNotFoundError, match='trace.json.gz'):
    prof.read_trace(str(ROOT / 'configs'), {'x'})


def test_profile_step_occupancy_of_overlapping_instructions():
  prof = _load('profile_step')
  # thread 1: 0-10 and 20-25 us; thread 2: 5-15 us; two steps.
  o = prof.occupancy([(0.0, 10.0, 1), (5.0, 15.0, 2), (20.0, 25.0, 1)], steps=2)
  assert o['one_or_more_ms'] == pytest.approx(20 / 1e3 / 2)   # [0, 15] and [20, 25]
  assert o['two_or_more_ms'] == pytest.approx(5 / 1e3 / 2)    # [5, 10]
  assert o['summed_ms'] == pytest.approx(25 / 1e3 / 2)
  assert o['threads'] == 2
  assert prof.occupancy([], steps=1)['one_or_more_ms'] == 0.0
  # An event nested in another on the same thread is not parallel work.
  nested = prof.occupancy([(0.0, 10.0, 1), (2.0, 4.0, 1)], steps=1)
  assert nested['two_or_more_ms'] == 0.0 and nested['one_or_more_ms'] == pytest.approx(0.01)


def test_profile_step_gives_xla_created_instructions_a_module():
  """Instructions without an op_name (layout transposes, fusions whose root
  lost its metadata) take the op_name of their fused body or their first
  named producer; a convolution's class still comes from its own op_name."""
  prof = _load('profile_step')
  text = '\n'.join([
      '%fused_computation.1 (param_0: f32[8,4]) -> f32[8,4] {',
      '  %param_0 = f32[8,4]{1,0} parameter(0)',
      '  ROOT %m = f32[8,4]{1,0} multiply(%param_0, %param_0), '
      'metadata={op_name="jit(step)/jvp(COSNet)/decoder_thin/rcb1/mul"}',
      '}',
      'ENTRY %main (p0: f32[8,4], k: f32[3,3,4,4]) -> f32[4,8] {',
      '  %p0 = f32[8,4]{1,0} parameter(0)',
      '  %k = f32[3,3,4,4]{3,2,1,0} parameter(1)',
      '  %a = f32[8,4]{1,0} add(%p0, %p0), '
      'metadata={op_name="jit(step)/transpose(jvp(COSNet))/encoder/stem/add"}',
      '  %f = f32[8,4]{1,0} fusion(%p0), kind=kLoop, calls=%fused_computation.1',
      '  %t = f32[4,8]{1,0} transpose(%a), dimensions={1,0}',
      '  %c = f32[4,8]{1,0} copy(%t)',
      '  %orphan = f32[8,4]{1,0} negate(%p0)',
      '  ROOT %conv = f32[1,8,8,4]{3,2,1,0} convolution(%c, %k), window={size=3x3}, '
      'dim_labels=b01f_01io->b01f',
      '}'])
  hlo = prof.parse_hlo(text)
  assert hlo['a']['op_name_from'] == 'own'
  assert hlo['f']['op_name_from'] == 'fused'
  assert prof.module_of(hlo['f']['op_name']) == 'decoder_thin'
  for name in ('t', 'c', 'conv'):     # a chain of unnamed instructions
    assert hlo[name]['op_name_from'] == 'operand', name
    assert prof.module_of(hlo[name]['op_name']) == 'encoder', name
  assert hlo['orphan']['op_name_from'] == '' and prof.module_of(hlo['orphan']['op_name']) == 'unknown'
  # inherited 'transpose(jvp' does not make a conv an input gradient
  assert prof.classify(hlo['conv']) == 'conv fwd'


def test_ensemble_members_average_and_score(tmp_path):
  ensemble = _load('ensemble')
  assert ensemble.parse_member('runs/a') == ('runs/a', 'best')
  assert ensemble.parse_member('runs/a:latest') == ('runs/a', 'latest')
  assert ensemble.parse_member('runs/a:4950') == ('runs/a', 4950)
  assert ensemble.parse_member('/x/y') == ('/x/y', 'best')
  with pytest.raises(ValueError, match='checkpoint'):
    ensemble.parse_member('runs/a:first')
  rng = np.random.default_rng(0)
  masks = [rng.uniform(size=(32, 32)) < 0.2 for _ in range(3)]
  # Two members that each get half the image right: their average is exact
  # wherever they agree and 0.5 where they differ.
  a = [np.where(m, 0.9, 0.1).astype(np.float32) for m in masks]
  b = [np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32) for x in a]
  avg = ensemble.average_members([a, b])
  for x, y, z in zip(a, b, avg):
    np.testing.assert_allclose(z, (x + y) / 2)
  dice, per_image = ensemble.mean_dice(avg, masks)
  assert per_image == pytest.approx([image_metrics(p, m)['dice'] for p, m in zip(avg, masks)])
  assert dice == pytest.approx(np.mean(per_image))
  # One member alone is its own ensemble.
  assert ensemble.mean_dice(ensemble.average_members([a]), masks)[0] == pytest.approx(
      ensemble.mean_dice(a, masks)[0])
  with pytest.raises(ValueError, match='image counts'):
    ensemble.average_members([a, b[:2]])
  with pytest.raises(SystemExit, match='not a training workdir'):
    ensemble.main([str(tmp_path), '--out', str(tmp_path / 'e.json')])


def test_synthetic_probe_is_compared_as_rows_d_and_e(tmp_path, monkeypatch):
  """A synthetic_to_real probe's fine-tuned run is row (e), its stage 1 row
  (d), against the rows of its PROBE_BASELINES folder."""
  summarize = _load('summarize')
  monkeypatch.setitem(summarize.PROBE_BASELINES, 'synth_probe', ('base',))

  def write(folder, dice, coarse):
    folder.mkdir(parents=True)
    for name, d in (('metrics.json', dice), ('metrics_coarse.json', coarse)):
      metrics = _metrics(d)
      metrics['per_image'] = [{'id': '1', 'dice': d}]
      (folder / name).write_text(json.dumps(metrics))

  probes = tmp_path / 'probes'
  write(probes / 'synth_probe' / 'synthetic_to_real' / 'finetune-s0', 0.90, 0.89)
  write(probes / 'synth_probe' / 'synthetic_to_real' / 'zero_shot-s0', 0.80, 0.79)
  write(probes / 'base' / 'octa500_3m' / 'e-s0', 0.88, 0.87)
  rows = summarize.collect('synthetic_to_real', probes / 'synth_probe')
  assert sorted(rows) == ['finetune', 'finetune, stage 1', 'zero_shot', 'zero_shot, stage 1']
  text = summarize._against_baseline(
      probes / 'synth_probe',
      {summarize.FINETUNE_ROWS[k]: v for k, v in rows.items() if k in summarize.FINETUNE_ROWS})
  lines = {l.split(' |')[0]: l for l in text.splitlines() if l.startswith('| (')}
  assert '+0.0200' in lines['| (d) + memory bank updated (the method)']   # 0.89 - 0.87
  assert '+0.0200' in lines['| (e) (d) + refinement']                      # 0.90 - 0.88
  assert summarize._against_baseline(probes / 'base', rows) == ''         # not a probe
