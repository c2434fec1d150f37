"""ImageNet initialisation: the official ResNeSt PyTorch state dict -> encoder variables.

Accepted files: the PyTorch checkpoint of the official release
(`resnest50-528c19ca.pth`; reading it needs torch, an optional dependency) or a
`.npz` with the same keys (numpy arrays), e.g. written by
`np.savez(path, **{k: v.numpy() for k, v in state_dict.items()})`.

Key mapping: a module path token followed by an index is joined with '_'
("layer1.0.conv2.fc1.weight" -> encoder/layer1_0/conv2/fc1). Conv weights
(4-d, OIHW) -> `kernel` (HWIO; grouped convs keep their [kh, kw, C_in/g, C_out]
layout); conv bias -> `bias`; BatchNorm weight/bias -> params scale/bias,
running_mean/running_var -> batch_stats mean/var. Ignored explicitly: `fc.*`
(the ImageNet classifier) and `*.num_batches_tracked`. Every other key must
match an encoder variable with the same shape, and every encoder variable
must be covered; otherwise a ValueError names the file and the key.
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

import numpy as np
from flax import traverse_util

IGNORED_PREFIXES = ('fc.',)
IGNORED_SUFFIXES = ('.num_batches_tracked',)
ENCODER = 'encoder'


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a .pth / .pt (torch) or .npz state dict into {key: float32 array}."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'pretrained weights file not found: {path}')
  if path.endswith('.npz'):
    with np.load(path) as f:
      state = {k: np.asarray(f[k]) for k in f.files}
  else:
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise ImportError(
          f'reading the PyTorch checkpoint {path} needs torch (pip install torch, '
          'CPU build is enough), or convert it once to .npz with the same keys') from e
    obj = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(obj, Mapping) and 'state_dict' in obj and isinstance(obj['state_dict'], Mapping):
      obj = obj['state_dict']
    if not isinstance(obj, Mapping):
      raise ValueError(f'{path}: expected a state dict (mapping of tensors), got {type(obj)}')
    state = {k: v.detach().cpu().numpy() for k, v in obj.items()}
  return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def _flax_path(torch_key: str) -> tuple[tuple[str, ...], str]:
  """'layer1.0.conv2.fc1.weight' -> (('layer1_0', 'conv2', 'fc1'), 'weight')."""
  tokens = torch_key.split('.')
  module, leaf = tokens[:-1], tokens[-1]
  path: list[str] = []
  for t in module:
    if re.fullmatch(r'\d+', t) and path:
      path[-1] = f'{path[-1]}_{t}'
    else:
      path.append(t)
  return tuple(path), leaf


def convert_resnest_state_dict(state: Mapping[str, np.ndarray], encoder_params: Any,
                               encoder_stats: Any, *, source: str = '<state dict>'
                               ) -> tuple[dict, dict]:
  """Returns (params, batch_stats) of the encoder with every leaf taken from `state`.

  encoder_params / encoder_stats: the encoder's current variable trees (only
  their structure and shapes are used). Raises ValueError naming `source` and
  the key on an unknown key, a shape mismatch or an encoder variable left over.
  """
  flat_p = traverse_util.flatten_dict(dict(encoder_params))
  flat_s = traverse_util.flatten_dict(dict(encoder_stats))
  new_p: dict[tuple[str, ...], np.ndarray] = {}
  new_s: dict[tuple[str, ...], np.ndarray] = {}
  for key, value in state.items():
    if key.startswith(IGNORED_PREFIXES) or key.endswith(IGNORED_SUFFIXES):
      continue
    value = np.asarray(value, dtype=np.float32)
    path, leaf = _flax_path(key)
    is_conv = (path + ('kernel',)) in flat_p
    if leaf == 'weight' and is_conv:
      if value.ndim != 4:
        raise ValueError(f'{source}: key {key!r} is a conv weight, expected 4-d, got {value.shape}')
      target, dest, value = path + ('kernel',), new_p, value.transpose(2, 3, 1, 0)
    elif leaf == 'bias' and is_conv:
      target, dest = path + ('bias',), new_p
    elif leaf in ('weight', 'bias'):
      target, dest = path + ({'weight': 'scale', 'bias': 'bias'}[leaf],), new_p
    elif leaf in ('running_mean', 'running_var'):
      target, dest = path + ({'running_mean': 'mean', 'running_var': 'var'}[leaf],), new_s
    else:
      raise ValueError(f'{source}: unexpected key {key!r} (not a ResNeSt encoder variable)')
    ref = (flat_p if dest is new_p else flat_s).get(target)
    if ref is None:
      raise ValueError(f'{source}: key {key!r} has no encoder variable '
                       f'{ENCODER}/{"/".join(target)} (is config.model a ResNeSt-50 size?)')
    if tuple(ref.shape) != value.shape:
      raise ValueError(f'{source}: key {key!r} has shape {value.shape} after conversion, '
                       f'{ENCODER}/{"/".join(target)} expects {tuple(ref.shape)}')
    dest[target] = value
  for flat, new, coll in ((flat_p, new_p, 'params'), (flat_s, new_s, 'batch_stats')):
    missing = sorted('/'.join(k) for k in flat if k not in new)
    if missing:
      raise ValueError(f'{source}: no weights for {len(missing)} {coll} of the encoder, '
                       f'e.g. {missing[:5]}')
  return traverse_util.unflatten_dict(new_p), traverse_util.unflatten_dict(new_s)


def load_pretrained_resnest(variables: Mapping[str, Any], path: str) -> dict[str, Any]:
  """Variables of COSNet with variables['params'|'batch_stats']['encoder'] read from `path`.

  Arrays are float32 numpy; other subtrees are returned unchanged.
  """
  state = read_state_dict(path)
  params, stats = convert_resnest_state_dict(
      state, variables['params'][ENCODER], variables['batch_stats'][ENCODER], source=path)
  out = dict(variables)
  out['params'] = {**variables['params'], ENCODER: params}
  out['batch_stats'] = {**variables['batch_stats'], ENCODER: stats}
  return out
