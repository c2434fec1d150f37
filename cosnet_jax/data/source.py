"""From `config.data` to the splits a run uses, as in-memory, preprocessed examples.

`prepared(data_cfg)` reads the dataset with the configured reader
(files_reader.py, or tfds_reader.py with data.reader='tfds') once per process.
On top of its own splits:
  * a dataset without the configured `val_split` (an `octa_folder` with only
    `train/`, or a single image/label pair of folders) gets one held out of
    its training split: `data.holdout_fraction` of the images, drawn with
    `data.holdout_seed` (splits.holdout; the ids are written to the workdir);
  * split expressions ('train+val', 'train[:20]') select examples by position.
`load_split` applies the preprocessing (CLAHE) once per process and keeps
the result in memory.
"""
from __future__ import annotations

import dataclasses
import threading

import numpy as np

from cosnet_jax.data import files_reader, tfds_reader
from cosnet_jax.data import splits as splits_lib
from cosnet_jax.data.datasets import Prepared, vessel_mask
from cosnet_jax.data.errors import DataError
from cosnet_jax.data.preprocess import preprocess_u8

_READERS = {'files': files_reader.read, 'tfds': tfds_reader.read}


def prepared(data_cfg) -> Prepared:
  """The decoded dataset of `data_cfg`, read by the configured reader.

  Raises:
    DatasetNotFoundError / DataError / DataIntegrityError (see the readers).
  """
  return _READERS[data_cfg.reader](data_cfg)


@dataclasses.dataclass
class Views:
  """The run's base splits: name -> [(split of the files, position)], and whether
  the validation split was held out of training."""
  members: dict
  held_out: bool


def _holdout_needed(data_cfg, prep: Prepared) -> bool:
  val = data_cfg.val_split
  return (bool(val) and float(data_cfg.holdout_fraction) > 0
          and any(name not in prep.splits for name in splits_lib.base_names(val))
          and 'train' in prep.splits)


def views(data_cfg) -> Views:
  """The base splits of the run (the dataset's, plus a held-out val if needed)."""
  prep = prepared(data_cfg)
  members = {name: [(name, i) for i in range(len(raw))] for name, raw in prep.splits.items()}
  held = _holdout_needed(data_cfg, prep)
  if held:
    val = splits_lib.base_names(data_cfg.val_split)[0]
    train_pos, val_pos = splits_lib.holdout(prep.splits['train'].ids,
                                            float(data_cfg.holdout_fraction),
                                            int(data_cfg.holdout_seed))
    members['train'] = [('train', i) for i in train_pos]
    members[val] = [('train', i) for i in val_pos]
  return Views(members, held)


def split_members(data_cfg, split: str) -> list[tuple[str, int]]:
  """(split of the files, position) of every example of a split expression."""
  v = views(data_cfg)
  pairs = splits_lib.resolve(split, {k: len(m) for k, m in v.members.items()})
  return [v.members[name][pos] for name, pos in pairs]


def split_ids(data_cfg, split: str) -> list[str]:
  prep = prepared(data_cfg)
  return [prep.splits[s].ids[i] for s, i in split_members(data_cfg, split)]


def has_split(data_cfg, split: str) -> bool:
  """Whether every base split of the expression `split` exists (holdout included)."""
  if not split:
    return False
  names = views(data_cfg).members
  return all(name in names for name in splits_lib.base_names(split))


def split_num_examples(data_cfg, split: str, missing_ok: bool = False) -> int:
  """Examples in a split expression: 'train', 'train+val', 'train[:20]'.

  A base split the dataset lacks is a DataError naming it, or 0 with `missing_ok`.
  """
  try:
    return len(split_members(data_cfg, split))
  except DataError:
    if missing_ok:
      return 0
    raise


def round_up(n: int, multiple: int) -> int:
  multiple = max(int(multiple), 1)
  return -(-int(n) // multiple) * multiple


def scale_factor(data_cfg) -> float:
  """Resampling factor from the dataset's pixel spacing to the model's.

  data.spacing_um / data.target_spacing_um (> 1: the image is enlarged);
  1 when either is unset (0).
  """
  spacing, target = float(data_cfg.spacing_um), float(data_cfg.target_spacing_um)
  return spacing / target if spacing > 0 and target > 0 else 1.0


def dataset_info(data_cfg) -> dict:
  """{'num_examples': {split: n}, 'image_size': (H, W), 'has_thick_thin': bool,
  'train_size': (h, w), 'eval_size': (h, w), 'scale': float}.

  num_examples holds the run's base splits (a held-out val included); for a
  split expression use split_num_examples. image_size is the largest H and
  W in the dataset; train_size / eval_size are the spatial sizes of train /
  eval batches (multiples of pad_multiple; eval_size after resampling by
  `scale`, see scale_factor).
  """
  prep = prepared(data_cfg)
  v = views(data_cfg)
  size = prep.image_size
  f = scale_factor(data_cfg)
  crop = (data_cfg.crop_size, data_cfg.crop_size) if data_cfg.crop_size > 0 else tuple(
      int(round(s * f)) for s in size)
  return {
      'num_examples': {k: len(m) for k, m in v.members.items()},
      'image_size': size,
      'has_thick_thin': prep.has_thick_thin,
      'train_size': tuple(round_up(c, data_cfg.pad_multiple) for c in crop),
      'eval_size': tuple(round_up(int(round(s * f)), data_cfg.pad_multiple) for s in size),
      'scale': f,
  }


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
  """Positions of the split that process `process_index` reads (strided)."""
  return np.arange(process_index, n, process_count)


_SPLIT_CACHE: dict = {}
_LOCK = threading.Lock()


def load_split(data_cfg, split: str, process_index: int = 0, process_count: int = 1
               ) -> SplitArrays:
  """Preprocesses this process's shard of `split` once per run (memory cache)."""
  prep = prepared(data_cfg)
  key = (data_cfg.name, prep.fingerprint, split, process_index, process_count,
         bool(data_cfg.clahe), float(data_cfg.clahe_clip_limit),
         int(data_cfg.clahe_tile_grid), float(data_cfg.holdout_fraction),
         int(data_cfg.holdout_seed), data_cfg.val_split)
  with _LOCK:
    cached = _SPLIT_CACHE.get(key)
  if cached is not None:
    return cached
  members = split_members(data_cfg, split)
  idx = shard_indices(len(members), process_index, process_count)
  images, labels, vessels, ids = [], [], [], []
  for i in idx.tolist():
    name, pos = members[i]
    raw = prep.splits[name]
    images.append(preprocess_u8(raw.images[pos], data_cfg))
    labels.append(raw.labels[pos])
    vessels.append(np.flatnonzero(vessel_mask(raw.labels[pos])).astype(np.int32))
    ids.append(raw.ids[pos])
  out = SplitArrays(images, labels, vessels, ids, idx)
  with _LOCK:
    _SPLIT_CACHE[key] = out
  return out


def clear_caches():
  """Forgets decoded datasets and preprocessed splits of this process (tests)."""
  with _LOCK:
    _SPLIT_CACHE.clear()
  files_reader.clear_memory()
