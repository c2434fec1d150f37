"""Small on-disk fixtures in the exact layouts of the supported datasets (for tests).

ROSE is not redistributable, so its loaders are tested on these. Images are
drawn with the synthetic generator (downscaled size) so they look like OCTA;
thick / thin / gt labels come from the same example.
"""
import os

import numpy as np
from PIL import Image

from cosnet_jax.data import synthetic


def _save(path: str, array: np.ndarray):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path)


def _examples(n: int, size: int, seed: int):
  return [synthetic.generate_octa(synthetic.example_rng(seed, 9, i), size) for i in range(n)]


def write_rose1(root: str, n_train: int = 10, n_test: int = 3, size: int = 48,
                seed: int = 0) -> str:
  """Writes root/ROSE-1/{SVC,DVC,SVC_DVC}/{train,test}/{img,gt} (+ SVC thick_gt,
  thin_gt): SVC / DVC .tif, SVC_DVC img .png with .tif gt. Returns root."""
  for split, n in (('train', n_train), ('test', n_test)):
    exs = _examples(n, size, seed + (0 if split == 'train' else 1))
    for i, ex in enumerate(exs):
      name = f'{i + 1:02d}'
      for layer in ('SVC', 'DVC', 'SVC_DVC'):
        base = os.path.join(root, 'ROSE-1', layer, split)
        ext = '.png' if layer == 'SVC_DVC' else '.tif'
        _save(os.path.join(base, 'img', name + ext), ex['image'])
        _save(os.path.join(base, 'gt', name + '.tif'), ex['mask'] * np.uint8(255))
      svc = os.path.join(root, 'ROSE-1', 'SVC', split)
      _save(os.path.join(svc, 'thick_gt', name + '.tif'), ex['thick'] * np.uint8(255))
      _save(os.path.join(svc, 'thin_gt', name + '.tif'), ex['thin'] * np.uint8(255))
  return root


def write_rose2(root: str, n_train: int = 20, n_test: int = 4, size: int = 64,
                seed: int = 0) -> str:
  """Writes root/ROSE-2/{train,test}/{original,gt}/<i>_OD_SVP.png. Returns root."""
  for split, n in (('train', n_train), ('test', n_test)):
    for i, ex in enumerate(_examples(n, size, seed + (2 if split == 'train' else 3))):
      name = f'{i + 1}_OD_SVP.png'
      base = os.path.join(root, 'ROSE-2', split)
      _save(os.path.join(base, 'original', name), ex['image'])
      _save(os.path.join(base, 'gt', name), ex['mask'] * np.uint8(255))
  return root


def write_flat(root: str, splits=(('train', 4), ('val', 2), ('test', 2)), size: int = 48,
               seed: int = 0, thick_thin: bool = False, image_dir: str = 'image',
               label_dir: str = 'label', ext: str = '.png') -> str:
  """Writes root/{split}/{image,label}[/thick,/thin]/<i>.png. Returns root."""
  for s, (split, n) in enumerate(splits):
    for i, ex in enumerate(_examples(n, size, seed + 10 + s)):
      base = os.path.join(root, split)
      name = f'{split}{i}{ext}'
      _save(os.path.join(base, image_dir, name), ex['image'])
      _save(os.path.join(base, label_dir, name), ex['mask'] * np.uint8(255))
      if thick_thin:
        _save(os.path.join(base, 'thick', name), ex['thick'] * np.uint8(255))
        _save(os.path.join(base, 'thin', name), ex['thin'] * np.uint8(255))
  return root
