"""The image files a command is pointed at (cosnet-predict, cosnet-measure).

`find_images(path, recursive)` lists the images of a file or a folder and
names each one's outputs:
* the output name is the file's path below the folder without its extension
  (`sub/10451`), so `--recursive` mirrors the folder tree under the output;
* two images whose names differ only in the extension (`10451.bmp`,
  `10451.png`) keep it (`10451_bmp`, `10451_png`), so neither overwrites the
  other;
* subfolders are read only with `recursive` (otherwise counted, so the
  command can say how many it skipped); broken links, link loops and
  unreadable folders are listed by name, never silently dropped.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

from cosnet_jax.errors import UserError

IMAGE_SUFFIXES = ('.png', '.bmp', '.tif', '.tiff', '.jpg', '.jpeg')


@dataclasses.dataclass
class Inputs:
  """The images found: files, their output names, what was skipped and why."""
  files: list[pathlib.Path]
  names: dict[pathlib.Path, str]          # file -> output name ('sub/10451')
  skipped_folders: list[pathlib.Path]     # subfolders not read (recursive=False)
  unreadable: list[tuple[str, str]]       # (path, why): broken links, loops, permissions


def find_images(path: str | os.PathLike, recursive: bool = False) -> Inputs:
  """The images of `path` (a file or a folder); see the module docstring.

  Raises:
    UserError: the path does not exist, or a folder holds no image.
  """
  p = pathlib.Path(path)
  if p.is_file():
    if p.suffix.lower() not in IMAGE_SUFFIXES:
      raise UserError(f'{p}: not an image file ({", ".join(IMAGE_SUFFIXES)})')
    return Inputs([p], {p: p.stem}, [], [])
  if p.is_symlink() and not p.exists():
    raise UserError(f'input {p}: a broken link')
  if not p.is_dir():
    raise UserError(f'input not found: {p}')
  files, skipped, unreadable = [], [], []
  seen = {p.resolve()}
  stack = [p]
  while stack:
    folder = stack.pop()
    try:
      entries = sorted(folder.iterdir())
    except OSError as e:
      unreadable.append((str(folder), e.strerror or str(e)))
      continue
    for entry in entries:
      if entry.name.startswith('.'):
        continue
      if entry.is_symlink() and not entry.exists():
        if entry.suffix.lower() in IMAGE_SUFFIXES or not entry.suffix:
          unreadable.append((str(entry), 'a broken link'))
        continue
      if entry.is_dir():
        if not recursive:
          skipped.append(entry)
          continue
        real = entry.resolve()
        if real in seen:
          unreadable.append((str(entry), 'a link back into a folder already read'))
          continue
        seen.add(real)
        stack.append(entry)
      elif entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
        files.append(entry)
  if not files:
    where = f'folder {p}' + (' or its subfolders' if recursive else '')
    hint = (f' ({len(skipped)} subfolders not read: --recursive reads them)'
            if skipped else '')
    raise UserError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {where}{hint}')
  files.sort()
  return Inputs(files, output_names(files, p), skipped, unreadable)


def output_names(files: list[pathlib.Path], root: pathlib.Path) -> dict[pathlib.Path, str]:
  """file -> its path below `root` without the extension, the extension kept
  ('name_ext') where two files of one folder share a name."""
  stems: dict[tuple[pathlib.Path, str], int] = {}
  for f in files:
    key = (f.parent, f.stem.lower())
    stems[key] = stems.get(key, 0) + 1
  names = {}
  for f in files:
    rel = f.relative_to(root)
    stem = f.stem
    if stems[(f.parent, f.stem.lower())] > 1:
      stem = f'{f.stem}_{f.suffix[1:].lower()}'
    names[f] = (rel.parent / stem).as_posix()
  return names
