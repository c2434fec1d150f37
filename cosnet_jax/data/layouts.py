"""Finding and pairing the files of each supported dataset layout on disk.

Each ``scan_*`` function returns ``{split: [ExampleFiles, ...]}`` (sorted by id,
natural order) or raises a DataError subclass naming the folder / file:
  * DatasetNotFoundError: the expected folder is missing or holds no image;
  * PairingError: an image without a label, a label without an image, or two
    files with the same id in one folder.
`scan(data_cfg)` picks the layout from `config.data.name`; `fingerprint`
keys a listing by every file's path, size and time. Decoding (and the label /
size checks) happens in the readers.
"""
import hashlib
import json
import os
from typing import Optional

from cosnet_jax.data import datasets
from cosnet_jax.data import splits as splits_lib
from cosnet_jax.data.datasets import (FOLDER_INSTRUCTIONS, OCTA500_INSTRUCTIONS,
                                      ROSE_INSTRUCTIONS, ROSSA_INSTRUCTIONS, ExampleFiles,
                                      natural_key)
from cosnet_jax.data.errors import DataError, DatasetNotFoundError, PairingError

IMAGE_EXTENSIONS = ('.png', '.bmp', '.tif', '.tiff', '.jpg', '.jpeg')
# A label file may be named like its image, or with one of these suffixes.
LABEL_SUFFIXES = ('', '_gt', '_label', '_mask', '_manual', '_manual1')
# Bumped when what a reader stores for the same files changes (decoding rules).
FINGERPRINT_VERSION = 1


def _missing(folder: str, what: str, instructions: str) -> DatasetNotFoundError:
  if not os.path.isdir(folder):
    state = 'it does not exist'
  elif not os.listdir(folder):
    state = 'the folder is empty'
  else:
    state = f'it holds no image file ({", ".join(IMAGE_EXTENSIONS)})'
  return DatasetNotFoundError(f'Expected {what} at {folder!r}, but {state}.\n{instructions}')


def list_images(folder: str, instructions: str = '', what: str = 'an image folder',
                problems: Optional[list] = None) -> dict[str, str]:
  """{stem: path} of the image files in ``folder`` (not recursive).

  Raises:
    DatasetNotFoundError: if the folder is missing or holds no image file.
    PairingError: if two files share a stem (e.g. 'a.png' and 'a.tif').
  """
  if not os.path.isdir(folder):
    raise _missing(folder, what, instructions)
  out = {}
  for name in os.listdir(folder):
    stem, ext = os.path.splitext(name)
    if ext.lower() not in IMAGE_EXTENSIONS or name.startswith('.'):
      continue
    path = os.path.join(folder, name)
    if stem in out:
      message = f'Two files with the same id {stem!r}: {out[stem]} and {path}'
      if problems is None:
        raise PairingError(message)
      problems.append(message)
      continue
    out[stem] = path
  if not out:
    raise _missing(folder, what, instructions)
  return out


def _match_label(stem: str, labels: dict[str, str]) -> Optional[str]:
  for suffix in LABEL_SUFFIXES:
    if stem + suffix in labels:
      return stem + suffix
  return None


def pair_by_stem(image_dir: str, label_dirs: dict[str, str], instructions: str = '',
                 problems: Optional[list] = None) -> list[ExampleFiles]:
  """Pairs images with labels by file stem.

  Args:
    image_dir: folder of images.
    label_dirs: {'mask': dir, optional 'thick': dir, 'thin': dir}.
    instructions: appended to "folder missing" errors.

  Returns:
    [ExampleFiles] sorted by id (natural order).

  Raises:
    PairingError: naming every image without a label and every label without
      an image (up to 20), unless `problems` is a list: then each problem is
      appended to it and the paired examples are returned.
  """
  images = list_images(image_dir, instructions, 'the image folder', problems)
  found = {k: list_images(d, instructions, f'the {k} label folder', problems)
           for k, d in label_dirs.items()}
  found_problems = []
  pairs = {}
  used = {k: set() for k in found}
  for stem, path in images.items():
    entry = {}
    for k, labels in found.items():
      key = _match_label(stem, labels)
      if key is None:
        found_problems.append(f'image without {k} label: {path} (no {stem}.* in '
                              f'{label_dirs[k]})')
      else:
        entry[k] = labels[key]
        used[k].add(key)
    pairs[stem] = entry
  for k, labels in found.items():
    for key in sorted(set(labels) - used[k], key=natural_key):
      found_problems.append(f'{k} label without image: {labels[key]} (no {key}.* in '
                            f'{image_dir})')
  if found_problems and problems is None:
    shown = '\n  '.join(found_problems[:20])
    more = f'\n  ... and {len(found_problems) - 20} more' if len(found_problems) > 20 else ''
    raise PairingError(f'Unpaired files ({len(found_problems)}) in {image_dir}:\n  '
                       f'{shown}{more}')
  if problems is not None:
    problems.extend(found_problems)
  return [ExampleFiles(id=stem, image=images[stem], mask=pairs[stem]['mask'],
                       thick=pairs[stem].get('thick'), thin=pairs[stem].get('thin'))
          for stem in sorted(images, key=natural_key)
          if all(k in pairs[stem] for k in found)]


def _existing_root(root: str, instructions: str) -> str:
  if not root:
    raise DatasetNotFoundError(
        'config.data.root is empty: set it to the downloaded dataset folder.\n'
        + instructions)
  root = os.path.abspath(os.path.expanduser(root))
  if not os.path.isdir(root):
    raise DatasetNotFoundError(
        f'Dataset folder {root!r} (config.data.root) does not exist.\n{instructions}')
  if not os.listdir(root):
    raise DatasetNotFoundError(
        f'Dataset folder {root!r} (config.data.root) is empty.\n{instructions}')
  return root


def scan_flat(root: str, splits: Optional[tuple[str, ...]] = None,
              instructions: str = FOLDER_INSTRUCTIONS, optional_splits: bool = True,
              problems: Optional[list] = None) -> dict[str, list[ExampleFiles]]:
  """Flat layout ``{split}/{image,label}[/thick,/thin]``, or one pair of
  folders ``{image,label}`` at the root (read as the split 'train').

  Args:
    root: dataset folder.
    splits: split folder names to read; None = every sub-folder that has an
      'image' folder.
    optional_splits: if False, every listed split must exist.
  """
  root = _existing_root(root, instructions)
  if splits is None and os.path.isdir(os.path.join(root, 'image')):
    dirs = {'mask': os.path.join(root, 'label')}
    return {'train': pair_by_stem(os.path.join(root, 'image'), dirs, instructions,
                                  problems)}
  if splits is None:
    names = sorted(d for d in os.listdir(root)
                   if os.path.isdir(os.path.join(root, d, 'image')))
  else:
    names = [s for s in splits if not optional_splits
             or os.path.isdir(os.path.join(root, s))]
  if not names:
    want = '{' + ','.join(splits) + '}' if splits else '{split}'
    raise DatasetNotFoundError(
        f'No split folder {want}/image found in {root!r}.\n{instructions}')
  out = {}
  for split in names:
    base = os.path.join(root, split)
    dirs = {'mask': os.path.join(base, 'label')}
    if os.path.isdir(os.path.join(base, 'thick')) or os.path.isdir(os.path.join(base, 'thin')):
      dirs['thick'] = os.path.join(base, 'thick')
      dirs['thin'] = os.path.join(base, 'thin')
    out[split] = pair_by_stem(os.path.join(base, 'image'), dirs, instructions, problems)
  return out


def _first_dir(*candidates: str) -> Optional[str]:
  for c in candidates:
    if os.path.isdir(c):
      return c
  return None


def scan_octa500(root: str, fov: str, projection: str, label: str,
                 problems: Optional[list] = None) -> dict[str, list[ExampleFiles]]:
  """OCTA-500 in the original release layout, or the flat layout.

  Args:
    root: folder holding OCTA_3M/ / OCTA_6M/, or OCTA_xM itself, or a flat
      ``{train,val,test}/{image,label}`` copy.
    fov: '3m' or '6m'.
    projection: e.g. 'OCTA(ILM_OPL)'.
    label: e.g. 'GT_LargeVessel'.

  Returns:
    {split: [...]} with the official subject-id splits (official layout) or
    the split folders as they are (flat layout); empty splits are left out.
  """
  root = _existing_root(root, OCTA500_INSTRUCTIONS)
  if os.path.isdir(os.path.join(root, 'train', 'image')):
    return scan_flat(root, ('train', 'val', 'test'), OCTA500_INSTRUCTIONS,
                     problems=problems)
  sub = f'OCTA_{fov.upper()}'
  base = os.path.join(root, sub)
  if not os.path.isdir(base) and os.path.basename(os.path.normpath(root)) == sub:
    base = root
  if not os.path.isdir(base):
    raise DatasetNotFoundError(
        f'Expected the OCTA-500 folder {base!r} ({sub} of the original release) '
        f'or a flat train/image folder in {root!r}.\n{OCTA500_INSTRUCTIONS}')
  proj_dir = _first_dir(os.path.join(base, 'ProjectionMaps', projection),
                        os.path.join(base, 'Projection Maps', projection))
  if proj_dir is None:
    proj_dir = os.path.join(base, 'ProjectionMaps', projection)
  label_dir = _first_dir(os.path.join(base, label), os.path.join(base, 'Label', label),
                         os.path.join(base, 'GroundTruth', label))
  if label_dir is None:
    label_dir = os.path.join(base, label)
  files = pair_by_stem(proj_dir, {'mask': label_dir}, OCTA500_INSTRUCTIONS, problems)
  out = {}
  ranges = datasets.OCTA500_SPLITS[fov.lower()]
  unknown = []
  for ex in files:
    sid = int(ex.id) if ex.id.isdigit() else None
    split = None
    for name, (lo, hi) in ranges.items():
      if sid is not None and lo <= sid <= hi:
        split = name
    if split is None:
      unknown.append(ex.image)
    else:
      out.setdefault(split, []).append(ex)
  if unknown and problems is not None:
    problems.extend(f'not an OCTA-500 {fov.upper()} subject id ({ranges["train"][0]}-'
                    f'{ranges["test"][1]}): {path}' for path in unknown)
  elif unknown:
    raise PairingError(
        f'OCTA-500 {fov.upper()} files whose name is not a subject id of that '
        f'field of view ({ranges["train"][0]}-{ranges["test"][1]}): '
        + ', '.join(unknown[:10]))
  return {s: out[s] for s in ('train', 'val', 'test') if s in out}


def _rose_val(train: list[ExampleFiles]) -> tuple[list[ExampleFiles], list[ExampleFiles]]:
  """ROSE's fixed validation split: every 10th official-train image (sorted ids)."""
  keep, held = splits_lib.holdout([e.id for e in train], datasets.ROSE_VAL_FRACTION, seed=None)
  return [train[i] for i in keep], [train[i] for i in held]


def _rose_dir(root: str, name: str, marker: str) -> str:
  """root/name if present, else root itself when it looks like ``name``."""
  cand = os.path.join(root, name)
  if os.path.isdir(cand):
    return cand
  if os.path.isdir(os.path.join(root, marker)):
    return root
  raise DatasetNotFoundError(
      f'Expected the {name} folder at {cand!r} (config.data.root={root!r}).\n'
      + ROSE_INSTRUCTIONS)


def scan_rose1(root: str, layer: str, problems: Optional[list] = None
               ) -> dict[str, list[ExampleFiles]]:
  """ROSE-1, one layer: 'svc', 'dvc' or 'svc_dvc'.

  svc: image SVC/img, mask SVC/gt, thick SVC/thick_gt, thin SVC/thin_gt.
  dvc: image DVC/img, mask DVC/gt (one label).
  svc_dvc: image SVC_DVC/img (.png), mask SVC_DVC/gt (.tif), thick / thin from
    SVC/{thick_gt,thin_gt} (what COSNet's released code trains with).
  Splits: 'train' / 'val' (every 10th official-train image, splits.holdout)
  and 'test' (official test, never used for model selection).
  """
  root = _existing_root(root, ROSE_INSTRUCTIONS)
  base = _rose_dir(root, 'ROSE-1', 'SVC')
  sub = {'svc': 'SVC', 'dvc': 'DVC', 'svc_dvc': 'SVC_DVC'}[layer]
  out = {}
  for split in ('train', 'test'):
    d = os.path.join(base, sub, split)
    dirs = {'mask': os.path.join(d, 'gt')}
    if layer in ('svc', 'svc_dvc'):
      svc = os.path.join(base, 'SVC', split)
      dirs['thick'] = os.path.join(svc, 'thick_gt')
      dirs['thin'] = os.path.join(svc, 'thin_gt')
    out[split] = pair_by_stem(os.path.join(d, 'img'), dirs, ROSE_INSTRUCTIONS, problems)
  out['train'], out['val'] = _rose_val(out['train'])
  return {s: out[s] for s in ('train', 'val', 'test')}


def scan_rose2(root: str, problems: Optional[list] = None) -> dict[str, list[ExampleFiles]]:
  """ROSE-2: ROSE-2/{train,test}/{original,gt}; val = hold-out of train."""
  root = _existing_root(root, ROSE_INSTRUCTIONS)
  base = _rose_dir(root, 'ROSE-2', 'train')
  out = {split: pair_by_stem(os.path.join(base, split, 'original'),
                             {'mask': os.path.join(base, split, 'gt')}, ROSE_INSTRUCTIONS,
                             problems)
         for split in ('train', 'test')}
  out['train'], out['val'] = _rose_val(out['train'])
  return {s: out[s] for s in ('train', 'val', 'test')}


def scan_rossa(root: str, problems: Optional[list] = None) -> dict[str, list[ExampleFiles]]:
  """ROSSA: {train_manual,train_sam,val,test}/{image,label}; absent splits skipped."""
  root = _existing_root(root, ROSSA_INSTRUCTIONS)
  if not os.path.isdir(os.path.join(root, 'train_manual')) and os.path.isdir(
      os.path.join(root, 'ROSSA')):
    root = os.path.join(root, 'ROSSA')
  return scan_flat(root, ('train_manual', 'train_sam', 'val', 'test'), ROSSA_INSTRUCTIONS,
                   problems=problems)


# ------------------------------------------------------------ by config.data


def require_root(data_cfg) -> str:
  """The dataset folder, or a DatasetNotFoundError saying which flag sets it."""
  base, _ = datasets.parse_name(data_cfg.name)
  field = data_cfg.config_path if 'config_path' in data_cfg else 'config.data'
  if not data_cfg.root:
    where = f' (download: {datasets.DOWNLOAD[base]})' if base in datasets.DOWNLOAD else ''
    raise DatasetNotFoundError(
        f'{field}.root is empty: set --{field}.root=DIR to the {base} dataset '
        f'folder{where}\n{datasets.INSTRUCTIONS[base]}')
  return os.path.abspath(os.path.expanduser(data_cfg.root))


def scan(data_cfg, problems: Optional[list] = None) -> dict[str, list[ExampleFiles]]:
  """The files of each split of a file dataset ({split: [ExampleFiles]}).

  With `problems` (a list), pairing problems are appended to it instead of
  raised; a missing or empty dataset folder raises in any case.
  """
  base, config = datasets.parse_name(data_cfg.name)
  if base == 'synthetic_octa':
    raise DataError('synthetic_octa has no files to scan')
  root = require_root(data_cfg)
  if base == 'octa500':
    fov, proj, label = datasets.octa500_config(config)
    return scan_octa500(root, fov, proj, label, problems)
  if base == 'rose1':
    if config not in datasets.ROSE1_LAYERS:
      raise DataError(f'Dataset rose1 needs a config (rose1/<layer>); got '
                      f'{data_cfg.name!r}. Available: {", ".join(datasets.ROSE1_LAYERS)}')
    return scan_rose1(root, config, problems)
  if config:
    raise DataError(f'Dataset {base!r} has no configs; got {data_cfg.name!r}')
  if base == 'rose2':
    return scan_rose2(root, problems)
  if base == 'rossa':
    return scan_rossa(root, problems)
  return scan_flat(root, problems=problems)


def _file_entry(path: str) -> str:
  st = os.stat(path)
  return f'{os.path.realpath(path)}\t{st.st_size}\t{st.st_mtime_ns}'


def fingerprint(data_cfg, files: Optional[dict] = None) -> str:
  """Content key of a dataset: its name and every file's path, size and mtime
  (synthetic_octa: the generator's parameters)."""
  h = hashlib.sha1(f'v{FINGERPRINT_VERSION}\n{data_cfg.name}\n'.encode())
  base, _ = datasets.parse_name(data_cfg.name)
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
