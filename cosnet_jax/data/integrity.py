"""The dataset integrity check: every image / label pair of every split, all problems at once.

Checked per pair: the image and each label decode (a missing, truncated or
non-image file is named), each label is binary ({0, 1} or {0, 255}), image
and labels have the same size; two files with one id in a folder are a
pairing problem (layouts.py). Reported as warnings (training goes on): colour
images (converted to luminance), 16-bit or float images (scaled to 8 bit),
labels without any vessel pixel, constant images, and pixel-identical images
in two splits (a leak between training and evaluation; ids may repeat across
splits, as ROSE's do).

`check(files)` decodes as it checks, so the training start-up pays for one
pass over the files (the result is cached by files_reader.py).
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib

import numpy as np
from PIL import Image

from cosnet_jax.data.datasets import pack_labels, vessel_mask
from cosnet_jax.data.errors import DataError, DataIntegrityError
from cosnet_jax.data.image_io import read_image_u8, read_label

MAX_LISTED = 50


@dataclasses.dataclass
class Report:
  """What `check` found: problems (errors), warnings, the decoded splits, a summary."""
  name: str
  problems: list            # 'path: what is wrong'
  warnings: list
  decoded: dict             # {split: (images, labels, ids)}
  summary: str = ''

  def error(self) -> DataIntegrityError:
    shown = '\n  '.join(self.problems[:MAX_LISTED])
    more = (f'\n  ... and {len(self.problems) - MAX_LISTED} more'
            if len(self.problems) > MAX_LISTED else '')
    return DataIntegrityError(
        f'{len(self.problems)} problem(s) in dataset {self.name!r} (config.data.root); '
        f'the first: {self.problems[0]}\n  {shown}{more}')


def _mode(path: str) -> str:
  try:
    with Image.open(path) as im:
      return im.mode
  except (OSError, ValueError, SyntaxError):
    return ''


def _check_pair(ex, problems: list, warnings: list):
  """Decodes one example; returns (image, packed labels) or None after a problem."""
  ok = True
  try:
    image = read_image_u8(ex.image)
  except DataError as e:
    problems.append(str(e))
    image, ok = None, False
  labels = {}
  for kind, path in (('mask', ex.mask), ('thick', ex.thick), ('thin', ex.thin)):
    if path is None:
      continue
    try:
      labels[kind] = read_label(path)
    except DataError as e:
      problems.append(str(e))
      ok = False
  if not ok:
    return None
  for kind, arr in labels.items():
    path = getattr(ex, kind)
    if arr.shape != image.shape:
      problems.append(f'{path}: label is {arr.shape[0]}x{arr.shape[1]} but image '
                      f'{ex.image} is {image.shape[0]}x{image.shape[1]}')
      ok = False
  if not ok:
    return None
  mode = _mode(ex.image)
  if mode.startswith(('RGB', 'P', 'CMYK', 'YCbCr')):
    warnings.append(f'{ex.image}: colour image ({mode}), read as luminance')
  elif mode.startswith('I') or mode == 'F':
    warnings.append(f'{ex.image}: {mode} image, scaled to 8 bit')
  if not labels['mask'].any():
    warnings.append(f'{ex.mask}: label has no vessel pixel')
  if image.min() == image.max():
    warnings.append(f'{ex.image}: constant image (every pixel {int(image.min())})')
  return image, pack_labels(labels['mask'], labels.get('thick'), labels.get('thin'))


def _sizes_text(shapes) -> str:
  counts = collections.Counter(f'{h}x{w}' for h, w in shapes)
  if len(counts) == 1:
    return next(iter(counts))
  top = ', '.join(f'{k} ({n})' for k, n in counts.most_common(3))
  return f'{len(counts)} sizes: {top}' + (', ...' if len(counts) > 3 else '')


def check(files: dict, name: str, problems: list | None = None) -> Report:
  """Checks and decodes every pair of `files` ({split: [ExampleFiles]}).

  `problems` (e.g. the pairing problems of the scan) are reported first.
  """
  problems = list(problems or [])
  warnings: list = []
  decoded = {}
  digests: dict = {}       # image sha1 -> (split, path)
  shapes, fractions = [], collections.defaultdict(list)
  for split, examples in files.items():
    images, labels, ids = [], [], []
    for ex in examples:
      out = _check_pair(ex, problems, warnings)
      if out is None:
        continue
      image, packed = out
      digest = hashlib.sha1(image.tobytes()).hexdigest()
      if digest in digests and digests[digest][0] != split:
        warnings.append(f'{ex.image}: the same pixels as {digests[digest][1]} '
                        f'(split {digests[digest][0]!r})')
      digests.setdefault(digest, (split, ex.image))
      images.append(image)
      labels.append(packed)
      ids.append(ex.id)
      shapes.append(image.shape)
      fractions[split].append(float(vessel_mask(packed).mean()))
    decoded[split] = (images, labels, ids)
  order = {'train': 0, 'val': 1, 'test': 2}
  counts = ', '.join(f'{s} {len(files[s])}' for s in sorted(
      files, key=lambda s: (order.get(s.split('_')[0], 3), s)))
  frac_split = next((s for s in files if s.startswith('train') and fractions[s]),
                    next((s for s in files if fractions[s]), None))
  frac = (f'; vessel fraction {np.mean(fractions[frac_split]):.3f} ({frac_split})'
          if frac_split else '')
  summary = (f'{name}: {counts} pairs; images {_sizes_text(shapes) if shapes else "none"}'
             f'{frac}')
  return Report(name, problems, warnings, decoded, summary)
