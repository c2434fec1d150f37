"""cosnet-crossdomain: every model on every held-out set in one markdown + JSON table."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from cosnet_jax import cross_domain
from cosnet_jax.data import testing
from cosnet_jax.errors import UserError
from cosnet_jax.data import source
from cosnet_jax.evaluation import metrics
from cosnet_jax.inference import evaluate_split
from cosnet_jax.inference import trained as trained_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_table_of_models_by_sets(tiny_run, tmp_path):
  workdir, _ = tiny_run
  a = testing.write_flat(str(tmp_path / 'a'), splits=(('test', 3),), size=48, seed=4)
  b = testing.write_flat(str(tmp_path / 'b'), splits=(('test', 2),), size=64, seed=5)
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS='cpu')
  out = tmp_path / 'table'
  r = subprocess.run([sys.executable, '-m', 'cosnet_jax.cross_domain', f'--model=tiny={workdir}',
                      f'--folder=a={a}',
                      f'--folder=b={b}:test@12.5', f'--out={out}'],
                     env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  table = json.loads(out.with_suffix('.json').read_text())
  assert [s['key'] for s in table['sets']] == ['a', 'b'] and table['sets'][1]['spacing_um'] == 12.5
  row = table['models'][0]
  assert row['model'] == 'tiny' and row['source'] == str(workdir)
  assert row['results']['a']['images'] == 3 and row['results']['b']['images'] == 2
  dice = row['results']['a']['per_image_dice']
  assert row['results']['a']['mean']['dice'] == pytest.approx(np.mean(list(dice.values())))
  md = out.with_suffix('.md').read_text()
  assert md.count('\n| ') == 2 and f"{row['results']['a']['mean']['dice']:.4f}" in md
  assert '| tiny |' in md


def test_folder_specs():
  with pytest.raises(UserError, match='KEY=DIR'):
    cross_domain.parse_folder('nodir')
  with pytest.raises(UserError, match='does not exist'):
    cross_domain.parse_folder('x=/no/such/folder')
  with pytest.raises(UserError, match="spacing 'abc'"):
    cross_domain.parse_folder(f'x={ROOT}@abc')
  assert cross_domain.shared_sets('/no/such') == []


@pytest.mark.slow
def test_a_missing_data_folder_is_one_line(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS='cpu')
  for args, says in (([], '--data=DIR'), ([f'--data={tmp_path / "nope"}'], 'no such folder'),
                     ([f'--data={tmp_path}'], 'no held-out set found')):
    r = subprocess.run([sys.executable, '-m', 'cosnet_jax.cross_domain', '--model=x',
                        f'--out={tmp_path / "t"}', *args],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and says in r.stderr and 'Traceback' not in r.stderr, r.stderr



def test_shared_sets_hold_every_image_of_their_split(shared_data, tmp_path):
  sets = {s.key: s for s in cross_domain.shared_sets(str(shared_data))}
  assert sorted(sets) == ['octa500_3m_test', 'octa500_6m_val', 'rossa_val']
  counts = {k: source.split_num_examples(cross_domain.set_data_config(s), s.split)
            for k, s in sets.items()}
  assert counts == {'octa500_3m_test': 50, 'octa500_6m_val': 20, 'rossa_val': 100}
  # Without OCTA500_6M (its val subjects) the release sample's five stand in.
  for name in ('OCTA500_3M', 'OCTA-500-official-sample'):
    (tmp_path / name).symlink_to(shared_data / name)
  sets = {s.key: s for s in cross_domain.shared_sets(str(tmp_path))}
  assert sorted(sets) == ['octa500_3m_test', 'octa500_6m_sample']
  assert source.split_num_examples(cross_domain.set_data_config(sets['octa500_6m_sample']),
                                   'train') == 5


def test_stage1_only_scores_the_first_stages_map(tiny_run, tmp_path):
  workdir, _ = tiny_run
  a = testing.write_flat(str(tmp_path / 'a'), splits=(('test', 2),), size=48, seed=4)
  held = cross_domain.parse_folder(f'a={a}')
  both = cross_domain.evaluate_models([str(workdir)], [held])
  first = cross_domain.evaluate_models([str(workdir)], [held], stage1_only=True)
  assert first['stage1_only'] and not both['stage1_only']
  trained = trained_lib.load(str(workdir))
  data_cfg = evaluate_split.dataset_config(trained, held.name, held.root, 0.0,
                                           base=cross_domain.set_data_config(held))
  pred = evaluate_split.model_maps(trained, data_cfg, held.split)
  for key, got in (('coarse', first), ('refined', both)):
    want = {r['id']: metrics.image_metrics(r[key], r['mask'], None)['dice']
            for r in pred['results']}
    assert got['models'][0]['results']['a']['per_image_dice'] == pytest.approx(want)
