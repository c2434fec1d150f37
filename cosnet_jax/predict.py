r"""Segments vessels in any OCTA image(s) with a trained run.

  python -m cosnet_jax.predict --workdir runs/quickstart --input scan.png --output out/
  python -m cosnet_jax.predict --workdir runs/o3m --input folder/ --output out/ \
      --threshold 0.5
  python -m cosnet_jax.predict ... --tta flips   # mean over 4 mirrored passes
  python -m cosnet_jax.predict ... --tta flips_shifts   # 4 mirrors x 4 one-pixel shifts

Inputs: png, bmp, tif/tiff, jpg; 8- or 16-bit; grayscale or RGB (converted to
luminance); any size (padded to a multiple of 32, or tiled above 1024 pixels a
side, and cropped back). Per image `<stem>` it writes:
  <stem>_mask.png     binary mask, 0 / 255 (8-bit)
  <stem>_prob.png     vessel probability, 16-bit PNG: value / 65535 = p
  <stem>_overlay.png  the image with the predicted vessels tinted red
An unreadable file is reported by name and skipped; the exit status is 1 when
any file failed, 2 for a usage error (missing checkpoint, empty folder).
"""

import pathlib
import sys
import time

import numpy as np
from absl import app, flags
from PIL import Image

from cosnet_jax.evaluation import tta as tta_lib


IMAGE_SUFFIXES = ('.png', '.bmp', '.tif', '.tiff', '.jpg', '.jpeg')


class UsageError(Exception):
  """A one-line error for the user (no traceback)."""


def parse_threshold(value: str):
  if value == 'otsu':
    return 'otsu'
  try:
    t = float(value)
  except ValueError:
    raise UsageError(f"--threshold={value!r}: expected 'otsu' or a number") from None
  if not 0.0 < t < 1.0:
    raise UsageError(f'--threshold={value}: expected a value in (0, 1)')
  return t


def list_inputs(path: str) -> list[pathlib.Path]:
  p = pathlib.Path(path)
  if p.is_file():
    return [p]
  if p.is_dir():
    files = sorted(f for f in p.iterdir()
                   if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
      raise UsageError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in folder {p}')
    return files
  raise UsageError(f'input not found: {p}')


def write_outputs(out_dir: pathlib.Path, stem: str, image, prob, mask) -> None:
  from cosnet_jax.evaluation import report  # pylint: disable=g-import-not-at-top
  Image.fromarray((mask.astype(np.uint8) * 255)).save(out_dir / f'{stem}_mask.png')
  Image.fromarray(np.round(np.clip(prob, 0, 1) * 65535).astype(np.uint16)).save(
      out_dir / f'{stem}_prob.png')
  report.save_overlay(out_dir / f'{stem}_overlay.png', image, mask)


def predict_files(segmenter, files, out_dir: pathlib.Path, threshold,
                  stream=sys.stderr) -> list[tuple[str, str]]:
  """Segments each file; returns [(file, error)] for those that failed."""
  from cosnet_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  out_dir.mkdir(parents=True, exist_ok=True)
  failures, t0 = [], time.time()
  for i, f in enumerate(files, 1):
    try:
      image = data_lib.load_image(f)
      prob, mask = segmenter(image, threshold=threshold)
      write_outputs(out_dir, f.stem, image, prob, mask)
    except Exception as e:  # pylint: disable=broad-except
      # One bad file must not stop a folder: report it and go on.
      failures.append((str(f), f'{type(e).__name__}: {e}'))
      print(f'\nerror: {f}: {e}', file=stream)
    rate = i / max(time.time() - t0, 1e-9)
    bar = '#' * int(30 * i / len(files))
    print(f'\r[{bar:<30}] {i}/{len(files)} {rate:.2f} img/s', end='', file=stream)
  print(file=stream)
  return failures


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from cosnet_jax import compilation_cache  # pylint: disable=g-import-not-at-top
  compilation_cache.enable(flags.FLAGS.compilation_cache)
  F = flags.FLAGS
  try:
    for name in ('workdir', 'input', 'output'):
      if not getattr(F, name):
        raise UsageError(f'--{name} is required')
    threshold = parse_threshold(F.threshold)
    files = list_inputs(F.input)
    from cosnet_jax.evaluation import inference  # pylint: disable=g-import-not-at-top
    try:
      segmenter = inference.Segmenter.from_workdir(F.workdir, F.checkpoint, tta=F.tta)
    except FileNotFoundError as e:
      raise UsageError(str(e)) from None
  except UsageError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  failures = predict_files(segmenter, files, pathlib.Path(F.output), threshold)
  done = len(files) - len(failures)
  print(f'{done}/{len(files)} images segmented into {F.output}')
  if failures:
    print(f'{len(failures)} failed: ' + ', '.join(f for f, _ in failures),
          file=sys.stderr)
    sys.exit(1)


def define_flags():
  """Command-line flags (defined only when run as a program)."""
  flags.DEFINE_string('compilation_cache', None,
                      "XLA compilation cache folder ('' = off; default "
                      "$COSNET_COMPILATION_CACHE or ~/.cache/cosnet_jax/xla).")
  flags.DEFINE_string('workdir', None, 'Training workdir holding the checkpoints.')
  flags.DEFINE_string('input', None, 'An image file or a folder of images.')
  flags.DEFINE_string('output', None, 'Output folder.')
  flags.DEFINE_string('checkpoint', 'best', "'best', 'latest' or a step number.")
  flags.DEFINE_string('threshold', 'otsu', "'otsu', '0.5' or any float in (0, 1).")
  flags.DEFINE_enum('tta', None, sorted(tta_lib.MODES),
                    "Test-time augmentation: mirrors, or mirrors x one-pixel shifts "
                    "(default: the run's eval.tta).")


if __name__ == '__main__':
  from cosnet_jax import hugepages  # pylint: disable=g-import-not-at-top
  hugepages.reexec_with_hugepages()  # see cosnet_jax/hugepages.py
  define_flags()
  app.run(main)
