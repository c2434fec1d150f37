r"""Segments vessels in OCTA images with a trained model: `cosnet-predict`.

  cosnet-predict --model octa500-3m --input scans/ --output masks/   # the shipped model
  cosnet-predict --model my_model.cosnet --input scan.png --output out/ --threshold 0.5
  python -m cosnet_jax.predict --workdir runs/quickstart --input scan.png --output out/
  cosnet-predict --model octa500-3m --input scans6mm/ --output out/ --fov_mm 6
  cosnet-predict ... --tta flips   # mean over 4 mirrored passes

`--model` is a model file (cosnet-export), the name of a shipped model or a
workdir; `--workdir` a training run (its best checkpoints). Inputs: png, bmp,
tif/tiff, jpg; 8- or 16-bit; grayscale or RGB (converted to luminance); any
size (padded to a multiple of 32, or tiled above 1024 pixels a side, and
cropped back). With `--spacing_um` or `--fov_mm` (the scan's field of view,
mm across its width) each image is resampled to the model's pixel spacing and
the maps back. Per image `<stem>` it writes:
  <stem>_mask.png     binary mask, 0 / 255 (8-bit)
  <stem>_prob.png     vessel probability, 16-bit PNG: value / 65535 = p
  <stem>_overlay.png  the image with the predicted vessels tinted red
An unreadable file is reported by name and skipped; the exit status is 1 when
any file failed, 2 for a usage error (missing model, empty folder).
"""

import pathlib
import sys
import time

from absl import flags

from cosnet_jax import cli
from cosnet_jax.data.errors import DataError
from cosnet_jax.data.image_io import load_image
from cosnet_jax.errors import UserError
from cosnet_jax.evaluation import report
from cosnet_jax.inference.evaluate_split import parse_threshold as parse
from cosnet_jax.inference.segmenter import Segmenter

IMAGE_SUFFIXES = ('.png', '.bmp', '.tif', '.tiff', '.jpg', '.jpeg')
FLAGS = flags.FLAGS


def parse_threshold(value: str | None):
  """None (the model's default), 'otsu' or a float in (0, 1)."""
  if value is None:
    return None
  return parse(value)


def list_inputs(path: str) -> list[pathlib.Path]:
  p = pathlib.Path(path)
  if p.is_file():
    return [p]
  if p.is_dir():
    files = sorted(f for f in p.iterdir()
                   if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
      raise UserError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in folder {p}')
    return files
  raise UserError(f'input not found: {p}')


def write_outputs(out_dir: pathlib.Path, stem: str, image, prob, mask) -> None:
  report.save_mask_png(out_dir / f'{stem}_mask.png', mask)
  report.save_probability_png(out_dir / f'{stem}_prob.png', prob)
  report.save_overlay(out_dir / f'{stem}_overlay.png', image, mask)


def predict_files(segmenter, files, out_dir: pathlib.Path, threshold,
                  stream=sys.stderr, spacing_um=None, fov_mm=None) -> list[tuple[str, str]]:
  """Segments each file; returns [(file, error)] for those that failed to read."""
  out_dir.mkdir(parents=True, exist_ok=True)
  failures, t0 = [], time.time()
  for i, f in enumerate(files, 1):
    try:
      image = load_image(f)
    except DataError as e:
      # One bad file must not stop a folder: report it and go on.
      failures.append((str(f), str(e)))
      print(f'\nerror: {e}', file=stream)
      continue
    prob, mask = segmenter(image, threshold=threshold, spacing_um=spacing_um, fov_mm=fov_mm)
    write_outputs(out_dir, f.stem, image, prob, mask)
    rate = i / max(time.time() - t0, 1e-9)
    bar = '#' * int(30 * i / len(files))
    print(f'\r[{bar:<30}] {i}/{len(files)} {rate:.2f} img/s', end='', file=stream)
  print(file=stream)
  return failures


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments: {argv[1:]}')
  if bool(FLAGS.workdir) == bool(FLAGS.model):
    raise UserError('give one of --model (a model file or shipped name) or --workdir')
  threshold = parse_threshold(FLAGS.threshold)
  files = list_inputs(FLAGS.input)
  if FLAGS.model:
    segmenter = Segmenter.from_pretrained(FLAGS.model, tta=FLAGS.tta)
  else:
    segmenter = Segmenter.from_workdir(FLAGS.workdir, FLAGS.checkpoint, tta=FLAGS.tta)
  if FLAGS.spacing_um is not None or FLAGS.fov_mm is not None:
    segmenter.scale_for(1, FLAGS.spacing_um, 1.0 if FLAGS.fov_mm else None)  # checks early
  failures = predict_files(segmenter, files, pathlib.Path(FLAGS.output), threshold,
                           spacing_um=FLAGS.spacing_um, fov_mm=FLAGS.fov_mm)
  done = len(files) - len(failures)
  print(f'{done}/{len(files)} images segmented into {FLAGS.output}')
  if failures:
    print(f'{len(failures)} failed: ' + ', '.join(f for f, _ in failures), file=sys.stderr)
    sys.exit(1)


def define_flags():
  """Command-line flags (defined only when run as a program)."""
  flags.DEFINE_string('model', None, 'A model file, a shipped model name or a workdir.')
  flags.DEFINE_string('workdir', None, 'Training workdir holding the checkpoints.')
  flags.DEFINE_string('input', None, 'An image file or a folder of images.')
  flags.DEFINE_string('output', None, 'Output folder.')
  flags.DEFINE_string('checkpoint', 'best', "'best', 'latest' or a step number (--workdir).")
  flags.DEFINE_string('threshold', None, "'otsu', '0.5' or any float in (0, 1) "
                      "(default: the model's, usually per-image Otsu).")
  flags.DEFINE_float('spacing_um', None, "The images' pixel spacing in micrometres.")
  flags.DEFINE_float('fov_mm', None, "The images' field of view in mm across their width "
                     '(e.g. 3 or 6 for OCTA-500); sets the spacing.')
  flags.DEFINE_string('tta', None, "Test-time augmentation: 'none', 'hflip', 'flips', "
                      "'flips_shifts' (default: the model's eval.tta).")
  flags.mark_flags_as_required(['input', 'output'])


def cli_main():
  cli.run(main, define_flags)


if __name__ == '__main__':
  cli_main()
