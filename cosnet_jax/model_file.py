"""The single-file model format (`.cosnet`): inference weights, config and metadata.

Layout (little endian):
  magic    16 bytes  b'COSNET-JAX-MODEL'
  version  uint32    FORMAT_VERSION
  hlen     uint64    length of the header
  header   hlen bytes, UTF-8 JSON: {'config': run config, 'meta': {...},
           'arrays': [{'name', 'dtype', 'shape', 'offset', 'nbytes'}]}
  payload  the arrays' raw bytes, C order, at their offsets (from payload start)
  digest   32 bytes  SHA-256 of everything before it
Array names are '/'-joined paths: 'stage1/params/encoder/conv1_0/kernel',
'stage2/batch_stats/...'. Only inference weights are stored (the parameter
average where the run kept one; no optimizer state, no memory bank), so the
file is the size of the weights plus a few kB.

Reading checks the magic (a foreign file), the version (a file of another
format version) and the digest (a truncated or damaged file), each with a
one-line `ModelFileError`.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import Any

import numpy as np

from cosnet_jax.errors import ModelFileError

MAGIC = b'COSNET-JAX-MODEL'
FORMAT_VERSION = 1
SUFFIX = '.cosnet'
_HEAD = struct.Struct('<16sIQ')


def _flatten(tree: Any, prefix: str, out: dict) -> None:
  if isinstance(tree, dict):
    for k in sorted(tree):
      _flatten(tree[k], f'{prefix}/{k}' if prefix else str(k), out)
  else:
    out[prefix] = np.asarray(tree)


def _unflatten(flat: dict) -> dict:
  root: dict = {}
  for name, arr in flat.items():
    node = root
    parts = name.split('/')
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = arr
  return root


def write(path: str | os.PathLike, trees: dict, config: dict, meta: dict) -> int:
  """Writes `trees` ({'stage1': {...}, 'stage2': {...}}) with config and meta; returns bytes.

  The file appears complete or not at all (written to a temporary name, then renamed).
  """
  flat: dict = {}
  _flatten(trees, '', flat)
  index, offset = [], 0
  for name, arr in flat.items():
    if arr.dtype == object:
      raise ValueError(f'model_file.write: {name} is not a numeric array')
    index.append({'name': name, 'dtype': arr.dtype.str, 'shape': list(arr.shape),
                  'offset': offset, 'nbytes': int(arr.nbytes)})
    offset += int(arr.nbytes)
  header = json.dumps({'config': config, 'meta': meta, 'arrays': index},
                      sort_keys=True).encode()
  path = os.fspath(path)
  tmp = f'{path}.{os.getpid()}.tmp'
  digest = hashlib.sha256()
  with open(tmp, 'wb') as f:
    for chunk in (_HEAD.pack(MAGIC, FORMAT_VERSION, len(header)), header,
                  *(np.ascontiguousarray(flat[e['name']]).tobytes() for e in index)):
      digest.update(chunk)
      f.write(chunk)
    f.write(digest.digest())
  os.replace(tmp, path)
  return os.path.getsize(path)


def read(path: str | os.PathLike) -> tuple[dict, dict, dict]:
  """(trees, config, meta) of a model file.

  Raises:
    ModelFileError: missing, foreign, of another format version, truncated or damaged.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ModelFileError(f'model file not found: {path}')
  with open(path, 'rb') as f:
    data = f.read()
  if len(data) < _HEAD.size or not data.startswith(MAGIC):
    raise ModelFileError(f'{path} is not a cosnet_jax model file (no {MAGIC.decode()} header)')
  _, version, hlen = _HEAD.unpack_from(data)
  if version != FORMAT_VERSION:
    raise ModelFileError(
        f'{path} has model format version {version}; this cosnet_jax reads version '
        f'{FORMAT_VERSION}' + (' (upgrade cosnet-jax)' if version > FORMAT_VERSION else
                               ' (export it again from its workdir)'))
  if len(data) < _HEAD.size + hlen + 32:
    raise ModelFileError(f'{path} is truncated ({len(data)} bytes; the header alone '
                         f'needs {_HEAD.size + hlen + 32})')
  if hashlib.sha256(data[:-32]).digest() != data[-32:]:
    raise ModelFileError(f'{path} is truncated or damaged (checksum mismatch)')
  try:
    header = json.loads(data[_HEAD.size:_HEAD.size + hlen])
  except ValueError:
    raise ModelFileError(f'{path}: unreadable header') from None
  start = _HEAD.size + hlen
  flat = {}
  for e in header['arrays']:
    lo = start + e['offset']
    flat[e['name']] = np.frombuffer(data, np.dtype(e['dtype']), count=int(np.prod(
        e['shape'], dtype=np.int64)), offset=lo).reshape(e['shape']).copy()
  return _unflatten(flat), header['config'], header['meta']
