"""Data layer: OCTA datasets, their readers, mixtures, splits and the input pipeline.

Modules, each the owner of one idea:
  datasets      names, layouts' instructions, pixel spacing, in-memory types,
                label bit-packing
  layouts       finding and pairing files on disk; the listing's fingerprint
  files_reader  decode + check the files (integrity.py), cached by content
  tfds_reader   the same through the TFDS builders (builders.py; optional)
  mixture       config.data + config.data.mix -> the datasets of a run
  splits        split expressions and the one validation hold-out
  source        a dataset's splits as the run uses them (hold-out, CLAHE)
  pipeline      training and evaluation batches (augment.py, preprocess.py)
  synthetic     procedural OCTA images (the quick start's data)
Public API (docs/design.md; docs/data.md) below.
"""
from cosnet_jax.data.datasets import SPACING_UM, known_spacing
from cosnet_jax.data.errors import (DataError, DataIntegrityError, DatasetNotFoundError,
                                    ImageReadError, LabelValueError, PairingError,
                                    ShapeMismatchError)
from cosnet_jax.data.image_io import load_image
from cosnet_jax.data.mixture import source_key, sources
from cosnet_jax.data.pipeline import make_eval_batches, make_train_iterator
from cosnet_jax.data.preprocess import preprocess
from cosnet_jax.data.source import dataset_info, has_split, split_ids, split_num_examples

__all__ = ['make_train_iterator', 'make_eval_batches', 'dataset_info',
           'split_num_examples', 'has_split', 'split_ids', 'load_image', 'preprocess',
           'sources', 'source_key', 'SPACING_UM', 'known_spacing', 'DataError',
           'DataIntegrityError', 'DatasetNotFoundError', 'ImageReadError',
           'LabelValueError', 'PairingError', 'ShapeMismatchError']
