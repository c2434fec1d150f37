"""From ``config.data`` to prepared TFDS data and to in-memory, preprocessed examples.

Where prepared data goes:
  * synthetic_octa: ``tfds_dir`` itself; the config name encodes every
    generation parameter (counts, size, seed), so other parameters never reuse it.
  * file datasets: ``tfds_dir/<basename(root)>-<sha1(realpath(root))[:10]>``, so a
    dataset prepared from another root is never silently reused.
Preparation is automatic on first use (``download_and_prepare`` with
``manual_dir = root``) and guarded by a file lock so that concurrent processes
on one file system prepare once.

``load_split`` decodes one process's shard of a split, applies the
preprocessing once (CLAHE) and keeps it in a per-run memory cache.
"""
import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import re
import threading
from typing import Optional

import numpy as np

from cosnet_jax.data.errors import DataError, DatasetNotFoundError
from cosnet_jax.data.preprocess import preprocess_u8


def _builders():
  """The TFDS builders module, imported on first use: code that builds
  SplitArrays itself (e.g. a bare accelerator machine without
  tensorflow_datasets) can use the pipeline without it."""
  from cosnet_jax.data import builders  # pylint: disable=g-import-not-at-top
  return builders

log = logging.getLogger(__name__)


def parse_name(name: str) -> tuple[str, Optional[str]]:
  """'octa500/3m_ilm_opl_largevessel' -> ('octa500', '3m_ilm_opl_largevessel')."""
  base, _, config = name.partition('/')
  if base not in _builders().BUILDERS:
    raise DataError(f'Unknown dataset {name!r} (config.data.name); known: '
                    + ', '.join(sorted(_builders().BUILDERS)))
  return base, (config or None)


def tfds_base_dir(data_cfg) -> str:
  return os.path.expanduser(data_cfg.tfds_dir or os.path.join('~', 'tensorflow_datasets'))


def _builder_and_dir(data_cfg):
  """(builder class, config name or object, data_dir) for ``data_cfg``."""
  base, config = parse_name(data_cfg.name)
  cls = _builders().BUILDERS[base]
  tfds_dir = tfds_base_dir(data_cfg)
  if base == 'synthetic_octa':
    if config:
      raise DataError(f'synthetic_octa takes no config ({data_cfg.name!r}); '
                      'set config.data.synthetic.* instead')
    s = data_cfg.synthetic
    cfg_obj = _builders().synthetic_config(s.num_train, s.num_val, s.num_test, s.size, s.seed)
    registered = cls.builder_configs.get(cfg_obj.name)
    return cls, (cfg_obj.name if registered is not None else cfg_obj), tfds_dir
  if cls.BUILDER_CONFIGS:
    names = [c.name for c in cls.BUILDER_CONFIGS]
    if config not in names:
      raise DataError(f'Dataset {base!r} needs a config ({base}/<config>); got '
                      f'{data_cfg.name!r}. Available: {", ".join(names)}')
  elif config:
    raise DataError(f'Dataset {base!r} has no configs; got {data_cfg.name!r}')
  root = data_cfg.root
  if not root:
    raise DatasetNotFoundError(
        f'config.data.root is empty: {base} needs the downloaded dataset folder.\n'
        + cls.MANUAL_DOWNLOAD_INSTRUCTIONS)
  real = os.path.realpath(os.path.expanduser(root))
  tag = re.sub(r'[^A-Za-z0-9_.-]', '_', os.path.basename(real.rstrip('/')) or 'root')
  digest = hashlib.sha1(real.encode()).hexdigest()[:10]
  return cls, config, os.path.join(tfds_dir, f'{tag}-{digest}')


@contextlib.contextmanager
def _file_lock(path: str):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


_BUILDERS_CACHE = {}
_LOCK = threading.Lock()


def get_builder(data_cfg):
  """The prepared TFDS builder for ``data_cfg`` (prepares it on first use)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  cls, config, data_dir = _builder_and_dir(data_cfg)
  root = data_cfg.root if cls is not _builders().SyntheticOcta else ''
  key = (cls.name, getattr(config, 'name', config), data_dir)
  with _LOCK:
    if key in _BUILDERS_CACHE:
      return _BUILDERS_CACHE[key]
    builder = cls(config=config, data_dir=data_dir, file_format='array_record')
    if not builder.is_prepared():
      real_root = os.path.realpath(os.path.expanduser(root)) if root else ''
      if root and not os.path.isdir(real_root):
        raise DatasetNotFoundError(
            f'Dataset folder {real_root!r} (config.data.root) does not exist.\n'
            + cls.MANUAL_DOWNLOAD_INSTRUCTIONS)
      lock = os.path.join(data_dir, f'.{cls.name}-{key[1] or "default"}.lock')
      with _file_lock(lock):
        builder = cls(config=config, data_dir=data_dir, file_format='array_record')
        if not builder.is_prepared():
          log.info('Preparing %s into %s', data_cfg.name, data_dir)
          tfds.disable_progress_bar()
          dl_config = tfds.download.DownloadConfig(manual_dir=real_root or None)
          builder.download_and_prepare(download_config=dl_config)
          builder = cls(config=config, data_dir=data_dir, file_format='array_record')
    _BUILDERS_CACHE[key] = builder
    return builder


def _split_names(split: str) -> list[str]:
  """Base split names of a TFDS split expression ('a+b[:10%]' -> ['a', 'b'])."""
  return [re.split(r'[\[(]', part.strip())[0] for part in split.split('+')]


def data_source(data_cfg, split: str):
  """Random-access source (``tfds`` ArrayRecordDataSource) of ``split``."""
  builder = get_builder(data_cfg)
  available = list(builder.info.splits.keys())
  for s in _split_names(split):
    if s not in available:
      raise DataError(f'Split {s!r} is not in dataset {data_cfg.name!r} '
                      f'(available: {", ".join(sorted(available))})')
  return builder.as_data_source(split=split)


def split_num_examples(data_cfg, split: str, missing_ok: bool = False) -> int:
  """Examples in a TFDS split expression: 'train', 'train+val', 'train[:20]'.

  A plain split name is read from the dataset info; an expression is resolved
  by TFDS (a slice or a sum of splits). A base split the dataset lacks is a
  DataError naming it, or 0 with ``missing_ok``.
  """
  splits = get_builder(data_cfg).info.splits
  if split in splits:
    return int(splits[split].num_examples)
  try:
    return len(data_source(data_cfg, split))
  except DataError:
    if missing_ok:
      return 0
    raise


def dataset_info(data_cfg) -> dict:
  """{'num_examples': {split: n}, 'image_size': (H, W), 'has_thick_thin': bool,
  'train_size': (h, w), 'eval_size': (h, w)}.

  num_examples holds the dataset's own splits; for a split expression of the
  config ('train[:20]', 'train+val') use split_num_examples.

  image_size is the largest H and W in the dataset; train_size / eval_size are
  the spatial sizes of train / eval batches (multiples of pad_multiple).
  """
  builder = get_builder(data_cfg)
  meta = builder.info.metadata
  size = tuple(int(v) for v in meta['image_size'])
  crop = (data_cfg.crop_size, data_cfg.crop_size) if data_cfg.crop_size > 0 else size
  return {
      'num_examples': {k: int(v.num_examples) for k, v in builder.info.splits.items()},
      'image_size': size,
      'has_thick_thin': bool(meta['has_thick_thin']),
      'train_size': tuple(round_up(c, data_cfg.pad_multiple) for c in crop),
      'eval_size': tuple(round_up(c, data_cfg.pad_multiple) for c in size),
  }


def round_up(n: int, multiple: int) -> int:
  multiple = max(int(multiple), 1)
  return -(-int(n) // multiple) * multiple


@dataclasses.dataclass
class SplitArrays:
  """One process's shard of a split, decoded and preprocessed.

  Attributes:
    images: list of uint8 [H_i, W_i] (CLAHE applied if configured).
    labels: list of uint8 [H_i, W_i]; bit 0 mask, bit 1 thick, bit 2 thin.
    vessel_index: list of int32 [V_i] flat indices of mask pixels.
    ids: list of str.
    indices: int [n] positions of these examples in the split.
  """
  images: list
  labels: list
  vessel_index: list
  ids: list
  indices: np.ndarray

  def __len__(self):
    return len(self.ids)


def shard_indices(n: int, process_index: int, process_count: int) -> np.ndarray:
  """Positions of the split that process ``process_index`` reads (strided)."""
  return np.arange(process_index, n, process_count)


_SPLIT_CACHE = {}


def load_split(data_cfg, split: str, process_index: int = 0, process_count: int = 1
               ) -> SplitArrays:
  """Decodes and preprocesses this process's shard of ``split`` once per run."""
  cls, config, data_dir = _builder_and_dir(data_cfg)
  key = (cls.name, getattr(config, 'name', config), data_dir, split, process_index,
         process_count, bool(data_cfg.clahe), float(data_cfg.clahe_clip_limit),
         int(data_cfg.clahe_tile_grid))
  with _LOCK:
    cached = _SPLIT_CACHE.get(key)
  if cached is not None:
    return cached
  src = data_source(data_cfg, split)
  idx = shard_indices(len(src), process_index, process_count)
  images, labels, vessels, ids = [], [], [], []
  for i in idx.tolist():
    ex = src[i]
    image = preprocess_u8(ex['image'][..., 0], data_cfg)
    mask = ex['mask'][..., 0] > 127
    packed = (mask.astype(np.uint8) | ((ex['thick'][..., 0] > 127).astype(np.uint8) << 1)
              | ((ex['thin'][..., 0] > 127).astype(np.uint8) << 2))
    images.append(image)
    labels.append(packed)
    vessels.append(np.flatnonzero(mask).astype(np.int32))
    ident = ex['id']
    ids.append(ident.decode() if isinstance(ident, bytes) else str(ident))
  out = SplitArrays(images, labels, vessels, ids, idx)
  with _LOCK:
    _SPLIT_CACHE[key] = out
  return out


def clear_caches():
  """Forgets cached builders and splits (tests)."""
  with _LOCK:
    _BUILDERS_CACHE.clear()
    _SPLIT_CACHE.clear()
