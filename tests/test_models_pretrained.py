"""ImageNet converter: official ResNeSt state-dict keys -> encoder variables."""
from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cosnet_jax import models
from cosnet_jax.models import pretrained
from cosnet_jax.models.cosnet import encoder_from_spec
from test_models_reference import conv2d, official_resnest_state_dict, resnest_forward
from cosnet_jax import config as config_lib

TINY_SIZES = dict(stem_width=8, widths=(4, 8, 8, 16), blocks=(2, 1, 2, 1))


def _abstract_variables(name, image_hw=(64, 64), **overrides):
  cfg = config_lib.model_config(name)
  cfg.update(overrides)
  model = models.build_cosnet(cfg)
  x = jax.ShapeDtypeStruct((1, *image_hw, 1), jnp.float32)
  return model, jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)


def _tiny_encoder_cfg():
  cfg = config_lib.model_config('cosnet_tiny')
  cfg.stem_width = TINY_SIZES['stem_width']
  cfg.stage_widths = TINY_SIZES['widths']
  cfg.stage_blocks = TINY_SIZES['blocks']
  return cfg


@pytest.fixture(scope='module')
def resnest50_abstract():
  return _abstract_variables('cosnet_resnest50')[1]


def test_resnest50_state_dict_fills_every_encoder_variable(resnest50_abstract):
  abstract = resnest50_abstract
  sd = official_resnest_state_dict()
  params, stats = pretrained.convert_resnest_state_dict(
      sd, abstract['params']['encoder'], abstract['batch_stats']['encoder'])
  # Same tree and shapes as the encoder; every non-ignored key used exactly once.
  assert jax.tree.structure(params) == jax.tree.structure(abstract['params']['encoder'])
  assert jax.tree.structure(stats) == jax.tree.structure(abstract['batch_stats']['encoder'])
  for new, ref in zip(jax.tree.leaves(params) + jax.tree.leaves(stats),
                      jax.tree.leaves(abstract['params']['encoder'])
                      + jax.tree.leaves(abstract['batch_stats']['encoder'])):
    assert new.shape == ref.shape and new.dtype == np.float32
  used = [k for k in sd if not k.startswith('fc.') and not k.endswith('num_batches_tracked')]
  n_leaves = len(jax.tree.leaves(params)) + len(jax.tree.leaves(stats))
  assert n_leaves == len(used)
  n_encoder = sum(a.size for a in jax.tree.leaves(params))
  assert n_encoder == 27_483_240 - 2048 * 1000 - 1000  # ResNeSt-50 without fc
  # Spot checks of the mapping.
  np.testing.assert_array_equal(params['bn1']['scale'], sd['bn1.weight'])
  np.testing.assert_array_equal(stats['layer3_5']['conv2']['bn1']['var'],
                                sd['layer3.5.conv2.bn1.running_var'])
  np.testing.assert_array_equal(params['layer2_0']['downsample_1']['kernel'][0, 0],
                                sd['layer2.0.downsample.1.weight'][:, :, 0, 0].T)


def test_grouped_conv_converted_matches_numpy(resnest50_abstract):
  """layer1.0.conv2.conv (3x3, groups=radix=2) through the converter vs NumPy on OIHW."""
  abstract = resnest50_abstract
  sd = official_resnest_state_dict(seed=1)
  params, _ = pretrained.convert_resnest_state_dict(
      sd, abstract['params']['encoder'], abstract['batch_stats']['encoder'])
  w = sd['layer1.0.conv2.conv.weight']  # [128, 32, 3, 3], groups 2
  kernel = params['layer1_0']['conv2']['conv']['kernel']
  x = np.random.default_rng(0).standard_normal((2, 64, 7, 9)).astype(np.float32)
  out = jax.lax.conv_general_dilated(
      jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.asarray(kernel), (1, 1), ((1, 1), (1, 1)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=2,
      precision=jax.lax.Precision.HIGHEST)
  ref = conv2d(x.astype(np.float64), w.astype(np.float64), pad=1, groups=2)
  np.testing.assert_allclose(np.asarray(out).transpose(0, 3, 1, 2), ref, rtol=1e-4, atol=1e-4)


def test_encoder_with_converted_weights_matches_numpy_resnest(tmp_path):
  """Whole encoder (eval mode) on converted weights == NumPy PyTorch-semantics forward."""
  spec = models.resolve_model_config(_tiny_encoder_cfg())
  model = models.build_cosnet(_tiny_encoder_cfg())
  x_abs = jax.ShapeDtypeStruct((2, 64, 64, 1), jnp.float32)
  abstract = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x_abs)
  sd = official_resnest_state_dict(stem_width=TINY_SIZES['stem_width'],
                                   widths=TINY_SIZES['widths'],
                                   blocks=TINY_SIZES['blocks'], seed=2)
  path = tmp_path / 'resnest_tiny.npz'
  np.savez(path, **sd)
  # Through the public entry point (.npz file, other subtrees kept as they are).
  marker = {'x': np.zeros(1)}
  variables = {'params': {**abstract['params'], 'decoder_thick': marker},
               'batch_stats': dict(abstract['batch_stats'])}
  loaded = models.load_pretrained_resnest(variables, str(path))
  assert loaded['params']['decoder_thick'] is marker
  enc_vars = {'params': loaded['params']['encoder'],
              'batch_stats': loaded['batch_stats']['encoder']}
  image = np.random.default_rng(3).uniform(size=(2, 64, 64, 3)).astype(np.float32)
  encoder = encoder_from_spec(spec)
  feats = jax.jit(lambda v, x: encoder.apply(v, x, train=False))(enc_vars, image)
  ref = resnest_forward(image.transpose(0, 3, 1, 2).astype(np.float64), sd,
                        stem_width=TINY_SIZES['stem_width'], widths=TINY_SIZES['widths'],
                        blocks=TINY_SIZES['blocks'])
  assert len(feats) == len(ref) == 5
  for got, want in zip(feats, ref):
    want = want.transpose(0, 2, 3, 1)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-3, atol=2e-3 * np.abs(want).max())


def test_unknown_key_is_named():
  _, abstract = _abstract_variables('cosnet_tiny')
  cfg = models.resolve_model_config(config_lib.model_config('cosnet_tiny'))
  sd = official_resnest_state_dict(stem_width=cfg.stem_width, widths=cfg.stage_widths,
                                   blocks=cfg.stage_blocks)
  enc_p, enc_s = abstract['params']['encoder'], abstract['batch_stats']['encoder']
  pretrained.convert_resnest_state_dict(sd, enc_p, enc_s)  # the matching dict converts
  bad = dict(sd, **{'layer1.0.conv2.extra.weight': np.zeros((4, 4, 1, 1), np.float32)})
  with pytest.raises(ValueError, match=r"layer1\.0\.conv2\.extra\.weight"):
    pretrained.convert_resnest_state_dict(bad, enc_p, enc_s, source='ckpt.npz')
  missing = {k: v for k, v in sd.items() if k != 'layer2.0.bn3.running_var'}
  with pytest.raises(ValueError, match=r'ckpt\.npz.*layer2_0/bn3/var'):
    pretrained.convert_resnest_state_dict(missing, enc_p, enc_s, source='ckpt.npz')


def test_size_mismatch_is_named():
  """The ResNeSt-50 checkpoint on a smaller model: clear error with key and shapes."""
  _, abstract = _abstract_variables('cosnet_tiny')
  sd = official_resnest_state_dict()
  with pytest.raises(ValueError, match=r"resnest50\.npz: key 'conv1\.0\.weight' has shape"):
    pretrained.convert_resnest_state_dict(sd, abstract['params']['encoder'],
                                          abstract['batch_stats']['encoder'],
                                          source='resnest50.npz')


def test_missing_file_and_missing_torch(tmp_path):
  with pytest.raises(FileNotFoundError, match='nope.pth'):
    pretrained.read_state_dict(str(tmp_path / 'nope.pth'))
  if importlib.util.find_spec('torch') is not None:
    pytest.skip('torch installed: the missing-torch message cannot be checked')
  fake = tmp_path / 'resnest50-528c19ca.pth'
  fake.write_bytes(b'not a checkpoint')
  with pytest.raises(ImportError, match=r'resnest50-528c19ca\.pth needs torch'):
    pretrained.read_state_dict(str(fake))
