"""Data layer: OCTA datasets, CLAHE, synthetic OCTA, the integrity check, the input pipeline.

Public API (docs/design.md, section "data"; docs/data.md):
  make_train_iterator, make_eval_batches, dataset_info, split_num_examples,
  load_image, preprocess, sources (the datasets of a mixture),
  DataError (and the other errors in cosnet_jax.data.errors).
Datasets are read from their files (no TensorFlow, no tensorflow-datasets);
the TFDS builders (builders.py) are used only with data.reader='tfds'.
"""
from cosnet_jax.data.config import sources, source_key
from cosnet_jax.data.errors import (DataError, DataIntegrityError, DatasetNotFoundError,
                                    ImageReadError, LabelValueError, PairingError,
                                    ShapeMismatchError)
from cosnet_jax.data.image_io import load_image
from cosnet_jax.data.preprocess import preprocess

_LAZY = {
    'make_train_iterator': 'cosnet_jax.data.pipeline',
    'make_eval_batches': 'cosnet_jax.data.pipeline',
    'dataset_info': 'cosnet_jax.data.source',
    'split_num_examples': 'cosnet_jax.data.source',
    'has_split': 'cosnet_jax.data.source',
    'split_ids': 'cosnet_jax.data.source',
}

__all__ = ['make_train_iterator', 'make_eval_batches', 'dataset_info',
           'split_num_examples', 'has_split', 'split_ids', 'load_image', 'preprocess',
           'sources', 'source_key', 'DataError', 'DataIntegrityError',
           'DatasetNotFoundError', 'ImageReadError', 'LabelValueError', 'PairingError',
           'ShapeMismatchError']


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
