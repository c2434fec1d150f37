"""`data.reader = 'tfds'`: the same datasets read through the TFDS builders (builders.py).

For users who keep their data as TFDS datasets (needs tensorflow-datasets,
not TensorFlow). The prepared TFDS data goes to
`tfds_dir/<name>-<fingerprint>`, where the fingerprint (layouts.fingerprint)
changes with any added, removed or edited file, so a stale preparation is
never read. The result is the same `datasets.Prepared` as the files reader's.
"""
from __future__ import annotations

import logging
import os
import re

import numpy as np

from cosnet_jax.data import datasets, layouts
from cosnet_jax.data.datasets import Prepared, RawSplit, pack_labels
from cosnet_jax.data.errors import DataError

log = logging.getLogger(__name__)


def _import_tfds():
  # Imported here: tensorflow-datasets is an optional dependency (extra 'tfds').
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError("config.data.reader='tfds' needs tensorflow-datasets "
                    "(pip install 'cosnet-jax[tfds]'); reader='files' does not") from None
  return tfds


def builder(data_cfg):
  """The prepared TFDS builder of `data_cfg` (prepared on first use)."""
  tfds = _import_tfds()
  from cosnet_jax.data import builders  # pylint: disable=g-import-not-at-top  (imports tfds)
  base, config = datasets.parse_name(data_cfg.name)
  cls = builders.BUILDERS[base]
  tfds_dir = os.path.expanduser(data_cfg.tfds_dir or os.path.join('~', 'tensorflow_datasets'))
  if base == 'synthetic_octa':
    s = data_cfg.synthetic
    config = builders.synthetic_config(s.num_train, s.num_val, s.num_test, s.size, s.seed)
    files = None
  else:
    files = layouts.scan(data_cfg)
  fp = layouts.fingerprint(data_cfg, files)
  tag = re.sub(r'[^A-Za-z0-9_.-]', '_', data_cfg.name)
  data_dir = os.path.join(tfds_dir, f'{tag}-{fp}')
  b = cls(config=config, data_dir=data_dir, file_format='array_record')
  if not b.is_prepared():
    log.info('Preparing %s into %s', data_cfg.name, data_dir)
    tfds.disable_progress_bar()
    root = layouts.require_root(data_cfg) if files is not None else None
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
    b = cls(config=config, data_dir=data_dir, file_format='array_record')
  return b, fp


def read(data_cfg) -> Prepared:
  """All splits of the TFDS dataset as a datasets.Prepared."""
  b, fp = builder(data_cfg)
  splits = {}
  for split in b.info.splits.keys():
    src = b.as_data_source(split=split)
    images, labels, ids = [], [], []
    for i in range(len(src)):
      ex = src[i]
      images.append(np.asarray(ex['image'][..., 0], np.uint8))
      labels.append(pack_labels(*(ex[k][..., 0] > 127 for k in datasets.LABEL_BITS)))
      ident = ex['id']
      ids.append(ident.decode() if isinstance(ident, bytes) else str(ident))
    splits[split] = RawSplit(images, labels, ids)
  return Prepared(data_cfg.name, fp, splits,
                          bool(b.info.metadata['has_thick_thin']))
