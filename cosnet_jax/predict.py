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
Two inputs that differ only in their extension (a.bmp, a.png) keep it in
their outputs' names (a_bmp_mask.png, a_png_mask.png). Subfolders are read
with --recursive (their outputs mirror them), else counted and skipped.
--measure also writes biomarkers.csv / .json (cosnet-measure) beside the
masks. An unreadable file, a broken link or a link loop is named and skipped;
the exit status is 1 when any file failed, 2 for a usage error (missing
model, empty folder, an output that cannot be written).
"""

import pathlib
import sys
import time

from absl import flags

from cosnet_jax import cli, inputs, measure, places
from cosnet_jax.data.errors import DataError
from cosnet_jax.data.image_io import load_image
from cosnet_jax.errors import UserError
from cosnet_jax.evaluation import report
from cosnet_jax.inference.evaluate_split import parse_threshold as parse
from cosnet_jax.inference.segmenter import Segmenter, input_spacing

FLAGS = flags.FLAGS


def parse_threshold(value: str | None):
  """None (the model's default), 'otsu' or a float in (0, 1)."""
  if value is None:
    return None
  return parse(value)


def write_outputs(out_dir: pathlib.Path, name: str, image, prob, mask) -> None:
  """<name>_mask.png, _prob.png, _overlay.png under out_dir (name may hold subfolders)."""
  base = out_dir / name
  base.parent.mkdir(parents=True, exist_ok=True)
  for suffix, save, args in (('_mask.png', report.save_mask_png, (mask,)),
                             ('_prob.png', report.save_probability_png, (prob,)),
                             ('_overlay.png', report.save_overlay, (image, mask))):
    path = base.with_name(base.name + suffix)
    with places.naming(path):
      save(path, *args)


def predict_files(segmenter, found: inputs.Inputs, out_dir: pathlib.Path, threshold,
                  stream=sys.stderr, spacing_um=None, fov_mm=None):
  """Segments each file of `found`; a file that cannot be read is named and skipped.

  Returns:
    ([(file, error)] of the files that failed, [(output name, mask)] of the rest).
  """
  out_dir.mkdir(parents=True, exist_ok=True)
  failures, masks, t0 = [], [], time.time()
  n = len(found.files)
  for i, f in enumerate(found.files, 1):
    try:
      image = load_image(f)
    except DataError as e:
      # One bad file must not stop a folder: report it and go on.
      failures.append((str(f), str(e)))
      print(f'\nerror: {e}', file=stream)
      continue
    prob, mask = segmenter(image, threshold=threshold, spacing_um=spacing_um, fov_mm=fov_mm)
    write_outputs(out_dir, found.names[f], image, prob, mask)
    masks.append((found.names[f], mask))
    rate = i / max(time.time() - t0, 1e-9)
    bar = '#' * int(30 * i / n)
    print(f'\r[{bar:<30}] {i}/{n} {rate:.2f} img/s', end='', file=stream)
  print(file=stream)
  return failures, masks


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments: {argv[1:]}')
  if bool(FLAGS.workdir) == bool(FLAGS.model):
    raise UserError('give one of --model (a model file or shipped name) or --workdir')
  if FLAGS.spacing_um is not None and FLAGS.fov_mm is not None:
    raise UserError('give --spacing_um or --fov_mm, not both')
  threshold = parse_threshold(FLAGS.threshold)
  out_dir = places.writable_folder(FLAGS.output, '--output')
  if FLAGS.model:
    segmenter = Segmenter.from_pretrained(FLAGS.model, tta=FLAGS.tta)
  else:
    segmenter = Segmenter.from_workdir(FLAGS.workdir, FLAGS.checkpoint, tta=FLAGS.tta)
  found = inputs.find_images(FLAGS.input, FLAGS.recursive)
  if FLAGS.spacing_um is not None:
    segmenter.scale_for(1, FLAGS.spacing_um)          # the spacing against the model's, early
  elif FLAGS.fov_mm is not None:
    input_spacing(1, None, FLAGS.fov_mm)
    if not segmenter.spacing_um:
      segmenter.scale_for(1, 1.0)                     # says the model knows no spacing
  if found.skipped_folders:
    print(f'{len(found.skipped_folders)} subfolder(s) skipped (--recursive reads them): '
          + ', '.join(f.name for f in found.skipped_folders[:5]), file=sys.stderr)
  failures, masks = predict_files(segmenter, found, out_dir, threshold,
                                  spacing_um=FLAGS.spacing_um, fov_mm=FLAGS.fov_mm)
  for path, why in found.unreadable:
    print(f'error: {path}: {why}', file=sys.stderr)
  failures += found.unreadable
  print(f'{len(masks)}/{len(found.files) + len(found.unreadable)} images segmented into '
        f'{out_dir}')
  if FLAGS.measure:
    rows, bad = measure.measure_images(masks, spacing_um=FLAGS.spacing_um, fov_mm=FLAGS.fov_mm)
    failures += bad
    spacing_given = FLAGS.spacing_um is not None or FLAGS.fov_mm is not None
    json_path = measure.write_table(rows, out_dir / 'biomarkers.csv', spacing_given=spacing_given,
                                    source=FLAGS.model or FLAGS.workdir)
    print(f'biomarkers of {len(rows)} masks: {out_dir / "biomarkers.csv"}, {json_path}')
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
  cli.define_spacing_flags()
  flags.DEFINE_string('tta', None, "Test-time augmentation: 'none', 'hflip', 'flips', "
                      "'flips_shifts' (default: the model's eval.tta).")
  flags.DEFINE_bool('recursive', False, 'Also segment the images in subfolders; the outputs '
                    'mirror them under --output.')
  flags.DEFINE_bool('measure', False, 'Also measure every mask (cosnet-measure): '
                    'biomarkers.csv and .json beside the masks.')
  flags.mark_flags_as_required(['input', 'output'])


def cli_main():
  cli.run(main, define_flags)


if __name__ == '__main__':
  cli_main()
