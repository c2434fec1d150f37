"""The recipes (configs/*.py): arguments, variants, the all-data mixture."""
import pytest

from cosnet_jax import config_files
from cosnet_jax.data.datasets import SPACING_UM
from cosnet_jax.errors import ConfigError


def _load(spec):
  return config_files.load(config_files.resolve(spec))


def test_every_shipped_recipe_loads_with_and_without_cpu():
  for name in config_files.shipped():
    for arg in ('', 'cpu') if name not in ('default',) else ('',):
      c = _load(f'{name}:{arg}' if arg else name)
      assert c.model.name == ('cosnet_small' if arg or name in ('cpu', 'synthetic')
                              else 'cosnet_resnest50'), name


def test_an_enlarged_grid_keeps_the_anatomy_of_a_crop():
  base, grid = _load('octa500_3m:cpu'), _load('octa500_3m:cpu,grid=1.5')
  assert grid.data.target_spacing_um == pytest.approx(SPACING_UM['octa500/3m'] / 1.5)
  assert base.data.crop_size == 96 and grid.data.crop_size == 160     # 144 to 32 px
  general = _load('octa_general:cpu,grid=1.68')
  assert general.data.target_spacing_um == pytest.approx(SPACING_UM['octa500/3m'] / 1.68)
  assert general.data.crop_size == 160
  with pytest.raises(ConfigError, match='spacing'):
    _load('folder:cpu,grid=1.5')                  # a folder of unknown spacing


def test_hires_and_wide_change_only_the_model():
  base, hires = _load('octa500_3m:cpu'), _load('octa500_3m:cpu,hires,encoder=wide')
  assert base.model.stem_pool and not hires.model.stem_pool
  assert tuple(hires.model.stage_widths) == (16, 32, 64, 128)
  a, b = base.to_dict(), hires.to_dict()
  del a['model'], b['model']
  assert a == b


def test_the_general_recipe_holds_every_public_set_and_leaves_one_out():
  c = _load('octa_general:cpu')
  assert c.data.name.startswith('octa500/3m') and sorted(c.data.mix) == [
      'octa500_6m', 'rossa', 'rossa_sam']
  six = c.data.mix.octa500_6m
  assert six.spacing_um == SPACING_UM['octa500/6m'] and six.val_split == 'val'
  assert c.data.select_on == 'mean' and c.data.target_spacing_um == SPACING_UM['octa500/3m']
  # A third of each batch per dataset: 3M 1, 6M 1, ROSSA 0.5 + 0.5.
  assert (c.data.weight, six.weight, c.data.mix.rossa.weight,
          c.data.mix.rossa_sam.weight) == (1.0, 1.0, 0.5, 0.5)
  assert 'octa500_6m' not in _load('octa_general:cpu,without=6m').data.mix
  assert sorted(_load('octa_general:cpu,without=rossa').data.mix) == ['octa500_6m']
  with pytest.raises(ConfigError, match="without='3m'"):
    _load('octa_general:cpu,without=3m')


def test_unknown_argument_keys_are_named():
  with pytest.raises(ConfigError, match="unknown key 'stesp'.*steps"):
    _load('octa500_3m:cpu,stesp=10')
  with pytest.raises(ConfigError, match="expected a int value for 'steps'"):
    _load('octa500_3m:steps=many')
