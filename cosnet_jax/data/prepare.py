"""From `config.data` to a decoded, checked dataset, cached by content.

`prepared(data_cfg)` returns a `Prepared` dataset: every split's images
(uint8 [H, W], the stored 8-bit form, before CLAHE) and bit-packed labels
(bit 0 mask, bit 1 thick, bit 2 thin), decoded from the files and checked
pair by pair (integrity.py). No TensorFlow and no tensorflow-datasets are
involved (`data.reader = 'tfds'` reads through the TFDS builders instead).

Why a cache, and why it cannot go stale: decoding and checking a dataset
(ROSSA's 818 PNGs, say) takes seconds to a minute, every start. The decoded
arrays are kept in one `.npz` file under `data.cache_dir` (default
~/.cache/cosnet_jax/data) whose name holds a fingerprint of the dataset's
file listing: every file's path, size and modification time (and the
dataset name / the synthetic generator's parameters). Adding, removing or
editing a file changes the fingerprint, so the next start decodes again and
replaces the old entry; nothing has to be deleted by hand.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import threading

import numpy as np

from cosnet_jax.data import integrity, layouts, synthetic
from cosnet_jax.data.errors import DataError, DatasetNotFoundError

log = logging.getLogger(__name__)

# Bumped when what is stored for the same files changes (decoding rules).
PREPARED_VERSION = 1
DATASETS = ('octa500', 'rose1', 'rose2', 'rossa', 'octa_folder', 'synthetic_octa')
INSTRUCTIONS = {
    'octa500': layouts.OCTA500_INSTRUCTIONS, 'rose1': layouts.ROSE_INSTRUCTIONS,
    'rose2': layouts.ROSE_INSTRUCTIONS, 'rossa': layouts.ROSSA_INSTRUCTIONS,
    'octa_folder': layouts.FOLDER_INSTRUCTIONS,
}
ROSE1_LAYERS = ('svc', 'dvc', 'svc_dvc')
DOWNLOAD = {
    'octa500': 'https://ieee-dataport.org/open-access/octa-500',
    'rose1': 'https://imed.nimte.ac.cn/dataofrose.html',
    'rose2': 'https://imed.nimte.ac.cn/dataofrose.html',
    'rossa': 'https://github.com/nhjydywd/OCTA-FRNet',
}


@dataclasses.dataclass
class RawSplit:
  """One split, decoded: images uint8 [H_i, W_i], labels uint8 [H_i, W_i] (bits), ids."""
  images: list
  labels: list
  ids: list

  def __len__(self):
    return len(self.ids)


@dataclasses.dataclass
class Prepared:
  """A decoded dataset: its splits (as the files give them) and facts about it."""
  name: str
  fingerprint: str
  splits: dict            # {split: RawSplit}
  has_thick_thin: bool
  warnings: list = dataclasses.field(default_factory=list)

  @property
  def image_size(self) -> tuple[int, int]:
    """(max H, max W) over all splits."""
    shapes = [im.shape for s in self.splits.values() for im in s.images]
    return (max(h for h, _ in shapes), max(w for _, w in shapes))


def parse_name(name: str) -> tuple[str, str | None]:
  """'octa500/3m_ilm_opl_largevessel' -> ('octa500', '3m_ilm_opl_largevessel')."""
  base, _, config = str(name).partition('/')
  if base not in DATASETS:
    raise DataError(f'Unknown dataset {name!r} (config.data.name); known: '
                    + ', '.join(sorted(DATASETS)))
  return base, (config or None)


def _octa500_config(config: str | None) -> tuple[str, str, str]:
  """'3m_ilm_opl_largevessel' -> ('3m', 'OCTA(ILM_OPL)', 'GT_LargeVessel')."""
  names = {}
  for fov in ('3m', '6m'):
    for proj in layouts.OCTA500_PROJECTIONS:
      modality, layer = proj[:-1].split('(')
      pname = layer.lower() if modality == 'OCTA' else 'oct_' + layer.lower()
      for label in layouts.OCTA500_LABELS:
        names[f'{fov}_{pname}_{label[3:].lower()}'] = (fov, proj, label)
  if config not in names:
    raise DataError(f'Dataset octa500 needs a config (octa500/<config>); got '
                    f'{config!r}. For example: octa500/3m_ilm_opl_largevessel, '
                    'octa500/6m_ilm_opl_largevessel (fov 3m|6m, projection, label)')
  return names[config]


def require_root(data_cfg) -> str:
  """The dataset folder, or a DatasetNotFoundError saying which flag sets it."""
  base, _ = parse_name(data_cfg.name)
  root = data_cfg.root
  field = data_cfg.get('config_path', 'config.data')
  if not root:
    where = (f' (download: {DOWNLOAD[base]})' if base in DOWNLOAD else '')
    raise DatasetNotFoundError(
        f'{field}.root is empty: set --{field}.root=DIR to the {base} dataset '
        f'folder{where}\n{INSTRUCTIONS[base]}')
  return os.path.abspath(os.path.expanduser(root))


def scan(data_cfg, problems: list | None = None) -> dict[str, list[layouts.ExampleFiles]]:
  """The files of each split of a file dataset ({split: [ExampleFiles]}).

  With `problems` (a list), pairing problems are appended to it instead of
  raised; a missing or empty dataset folder raises in any case.
  """
  base, config = parse_name(data_cfg.name)
  if base == 'synthetic_octa':
    raise DataError('synthetic_octa has no files to scan')
  root = require_root(data_cfg)
  if base == 'octa500':
    fov, proj, label = _octa500_config(config)
    return layouts.scan_octa500(root, fov, proj, label, problems)
  if base == 'rose1':
    if config not in ROSE1_LAYERS:
      raise DataError(f'Dataset rose1 needs a config (rose1/<layer>); got '
                      f'{data_cfg.name!r}. Available: {", ".join(ROSE1_LAYERS)}')
    return layouts.scan_rose1(root, config, problems)
  if config:
    raise DataError(f'Dataset {base!r} has no configs; got {data_cfg.name!r}')
  if base == 'rose2':
    return layouts.scan_rose2(root, problems)
  if base == 'rossa':
    return layouts.scan_rossa(root, problems)
  return layouts.scan_flat(root, problems=problems)


def _file_entry(path: str) -> str:
  st = os.stat(path)
  return f'{os.path.realpath(path)}\t{st.st_size}\t{st.st_mtime_ns}'


def fingerprint(data_cfg, files: dict | None = None) -> str:
  """Content key of the dataset: its name and every file's path, size and mtime."""
  h = hashlib.sha1(f'v{PREPARED_VERSION}\n{data_cfg.name}\n'.encode())
  base, _ = parse_name(data_cfg.name)
  if base == 'synthetic_octa':
    s = data_cfg.synthetic
    h.update(json.dumps([s.num_train, s.num_val, s.num_test, s.size, s.seed]).encode())
    return h.hexdigest()[:16]
  for split in sorted(files):
    for ex in files[split]:
      h.update(f'{split}\t{ex.id}\n'.encode())
      for path in (ex.image, ex.mask, ex.thick, ex.thin):
        if path:
          h.update((_file_entry(path) + '\n').encode())
  return h.hexdigest()[:16]


def cache_dir(data_cfg) -> str:
  return os.path.expanduser(data_cfg.get('cache_dir', '') or
                            os.path.join('~', '.cache', 'cosnet_jax', 'data'))


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
  meta = {'version': PREPARED_VERSION, 'name': prep.name, 'fingerprint': prep.fingerprint,
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
      if meta.get('version') != PREPARED_VERSION:
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
      labels.append(ex['mask'] | (ex['thick'] << 1) | (ex['thin'] << 2))
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


def prepared(data_cfg) -> Prepared:
  """The decoded dataset of `data_cfg` (memory, then disk cache, then the files).

  Raises:
    DatasetNotFoundError / DataError: the folder is missing, empty or of the
      wrong layout, or the name is unknown.
    DataIntegrityError: listing every pair that failed the checks.
  """
  if data_cfg.get('reader', 'files') == 'tfds':
    from cosnet_jax.data import tfds_reader  # pylint: disable=g-import-not-at-top
    return tfds_reader.prepared(data_cfg)
  base, _ = parse_name(data_cfg.name)
  problems: list = []
  files = None if base == 'synthetic_octa' else scan(data_cfg, problems)
  fp = fingerprint(data_cfg, files)
  key = (data_cfg.name, fp)
  if problems:   # decode the paired files too: every problem in one report
    raise integrity.check(files, data_cfg.name, problems).error()
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
