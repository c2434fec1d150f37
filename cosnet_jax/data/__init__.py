"""Data layer: OCTA datasets (TFDS builders), CLAHE, synthetic OCTA, input pipeline.

Public API (docs/design.md, section "data"; docs/data.md):
  make_train_iterator, make_eval_batches, dataset_info, split_num_examples,
  load_image, preprocess,
  ImageReadError (and the other errors in cosnet_jax.data.errors).
The TFDS-dependent parts are imported on first use, so ``load_image`` /
``preprocess`` stay light.
"""
from cosnet_jax.data.errors import (DataError, DatasetNotFoundError, ImageReadError,
                                    LabelValueError, PairingError, ShapeMismatchError)
from cosnet_jax.data.image_io import load_image
from cosnet_jax.data.preprocess import preprocess

_LAZY = {
    'make_train_iterator': 'cosnet_jax.data.pipeline',
    'make_eval_batches': 'cosnet_jax.data.pipeline',
    'dataset_info': 'cosnet_jax.data.source',
    'split_num_examples': 'cosnet_jax.data.source',
}

__all__ = ['make_train_iterator', 'make_eval_batches', 'dataset_info',
           'split_num_examples', 'load_image',
           'preprocess', 'DataError', 'DatasetNotFoundError', 'ImageReadError',
           'LabelValueError', 'PairingError', 'ShapeMismatchError']


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
