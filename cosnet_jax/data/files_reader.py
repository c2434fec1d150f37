"""`data.reader = 'files'`: a dataset decoded from its files, cached by content.

`read(data_cfg)` returns a `datasets.Prepared`: every split's images and
packed labels, decoded from the files and checked pair by pair
(integrity.py). No TensorFlow and no tensorflow-datasets are involved.

Why a cache, and why it cannot go stale: decoding and checking a dataset
(ROSSA's 818 PNGs, say) takes seconds to a minute, every start. The decoded
arrays are kept in one `.npz` file under `data.cache_dir` (default
$XDG_CACHE_HOME/cosnet_jax/data, or ~/.cache/cosnet_jax/data) whose name holds the listing's fingerprint
(layouts.fingerprint: every file's path, size and modification time).
Adding, removing or editing a file changes the fingerprint, so the next
start decodes again and replaces the old entry; nothing has to be deleted by
hand.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import threading

import numpy as np

from cosnet_jax.data import datasets, integrity, layouts, synthetic
from cosnet_jax.data.datasets import Prepared, RawSplit, pack_labels

log = logging.getLogger(__name__)

# The cache files' format (bumped when what is stored for the same files changes).
CACHE_VERSION = layouts.FINGERPRINT_VERSION


def cache_dir(data_cfg) -> str:
  if data_cfg.cache_dir:
    return os.path.expanduser(data_cfg.cache_dir)
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
  return os.path.join(os.path.expanduser(base), 'cosnet_jax', 'data')


def _cache_prefix(data_cfg) -> str:
  """File-name prefix of this dataset's entries: name tag + a digest of the root."""
  tag = re.sub(r'[^A-Za-z0-9_.-]', '_', data_cfg.name)
  root = os.path.realpath(os.path.expanduser(data_cfg.root)) if data_cfg.root else ''
  return f'{tag}-{hashlib.sha1(root.encode()).hexdigest()[:8]}-'


# --------------------------------------------------------------- the cache file


def _save(path: str, prep: Prepared) -> None:
  arrays = {}
  for split, raw in prep.splits.items():
    arrays[f'{split}.images'] = (np.concatenate([im.ravel() for im in raw.images])
                                 if raw.images else np.zeros((0,), np.uint8))
    arrays[f'{split}.labels'] = (np.concatenate([lb.ravel() for lb in raw.labels])
                                 if raw.labels else np.zeros((0,), np.uint8))
    arrays[f'{split}.shapes'] = np.array([im.shape for im in raw.images], np.int64
                                         ).reshape(-1, 2)
  meta = {'version': CACHE_VERSION, 'name': prep.name, 'fingerprint': prep.fingerprint,
          'has_thick_thin': prep.has_thick_thin, 'warnings': prep.warnings,
          'ids': {split: raw.ids for split, raw in prep.splits.items()}}
  arrays['meta'] = np.array(json.dumps(meta))
  tmp = f'{path}.{os.getpid()}.tmp'
  with open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  os.replace(tmp, path)


def _load(path: str) -> Prepared | None:
  try:
    with np.load(path, allow_pickle=False) as z:
      meta = json.loads(str(z['meta']))
      if meta.get('version') != CACHE_VERSION:
        return None
      splits = {}
      for split, ids in meta['ids'].items():
        shapes = z[f'{split}.shapes']
        flat_i, flat_l = z[f'{split}.images'], z[f'{split}.labels']
        offsets = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])])
        images = [flat_i[offsets[k]:offsets[k + 1]].reshape(shapes[k])
                  for k in range(len(ids))]
        labels = [flat_l[offsets[k]:offsets[k + 1]].reshape(shapes[k])
                  for k in range(len(ids))]
        splits[split] = RawSplit(images, labels, list(ids))
  except (OSError, ValueError, KeyError) as e:  # a damaged entry is rebuilt
    log.warning('ignoring the unreadable data cache %s (%s)', path, e)
    return None
  return Prepared(meta['name'], meta['fingerprint'], splits, meta['has_thick_thin'],
                  meta.get('warnings', []))


@contextlib.contextmanager
def _file_lock(path: str):
  with open(path, 'w') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------------- building


def _synthetic(data_cfg, fp: str) -> Prepared:
  s = data_cfg.synthetic
  splits = {}
  counts = (('train', s.num_train), ('val', s.num_val), ('test', s.num_test))
  for split_index, (split, n) in enumerate(counts):
    if n <= 0:
      continue
    images, labels, ids = [], [], []
    for i in range(int(n)):
      ex = synthetic.generate_octa(synthetic.example_rng(s.seed, split_index, i), s.size)
      images.append(ex['image'])
      labels.append(pack_labels(ex['mask'], ex['thick'], ex['thin']))
      ids.append(f'synthetic_{split}_{i:05d}')
    splits[split] = RawSplit(images, labels, ids)
  return Prepared(data_cfg.name, fp, splits, has_thick_thin=True)


def _decode(data_cfg, files: dict, fp: str) -> Prepared:
  report = integrity.check(files, data_cfg.name)
  if report.problems:
    raise report.error()
  splits = {split: RawSplit(*report.decoded[split]) for split in files}
  has_tt = any(ex.thick is not None for exs in files.values() for ex in exs)
  return Prepared(data_cfg.name, fp, splits, has_tt, report.warnings)


_MEMORY: dict = {}
_LOCK = threading.Lock()


def read(data_cfg) -> Prepared:
  """The decoded dataset of `data_cfg` (memory, then the disk cache, then the files).

  Raises:
    DatasetNotFoundError / DataError: the folder is missing, empty or of the
      wrong layout, or the name is unknown.
    DataIntegrityError: listing every pair that failed the checks.
  """
  base, _ = datasets.parse_name(data_cfg.name)
  problems: list = []
  files = None if base == 'synthetic_octa' else layouts.scan(data_cfg, problems)
  fp = layouts.fingerprint(data_cfg, files)
  if problems:   # decode the paired files too: every problem in one report
    raise integrity.check(files, data_cfg.name, problems).error()
  key = (data_cfg.name, fp)
  with _LOCK:
    if key in _MEMORY:
      return _MEMORY[key]
  folder = cache_dir(data_cfg)
  prefix = _cache_prefix(data_cfg)
  path = os.path.join(folder, f'{prefix}{fp}.npz')
  prep = _load(path) if os.path.isfile(path) else None
  if prep is None:
    os.makedirs(folder, exist_ok=True)
    with _file_lock(os.path.join(folder, f'.{prefix}lock')):
      prep = _load(path) if os.path.isfile(path) else None   # another process?
      if prep is None:
        log.info('Decoding and checking %s (%s) into %s', data_cfg.name,
                 data_cfg.root or 'generated', path)
        prep = (_synthetic(data_cfg, fp) if files is None
                else _decode(data_cfg, files, fp))
        _save(path, prep)
        for old in os.listdir(folder):   # earlier contents of the same folder
          if old.startswith(prefix) and old.endswith('.npz') and old != os.path.basename(path):
            os.remove(os.path.join(folder, old))
  with _LOCK:
    _MEMORY[key] = prep
  return prep


def clear_memory() -> None:
  """Forgets the datasets decoded in this process (tests)."""
  with _LOCK:
    _MEMORY.clear()
