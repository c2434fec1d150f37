r"""Measures the vessels of OCTA segmentations: `cosnet-measure`.

  cosnet-measure --input masks/ --output biomarkers.csv --fov_mm 3
  cosnet-measure --input scans/ --output biomarkers.csv --model octa500-3m --fov_mm 6
  cosnet-measure --input mask.png --output b.csv --spacing_um 9.87 --roi_mm 1,3

Without --model the inputs are binary masks (0 and one other value, e.g. the
`*_mask.png` of cosnet-predict); with --model they are scans, segmented first
by that model (a shipped name, a .cosnet file or a workdir; its threshold and
spacing handling) and then measured. One row per image: vessel area density,
skeleton length density, vessel diameter index, mean / median segment
diameter, tortuosity, segments and their length, branch points per area,
fractal dimension (definitions: docs/biomarkers.md). --spacing_um (um per
pixel) or --fov_mm (the scan's width in mm) puts lengths in mm / um;
without either they are in pixels and the column names say so. Pointed at a
cosnet-predict output folder it reads the *_mask files. --roi_mm D
measures a centred disc of diameter D mm, --roi_mm IN,OUT the annulus
between two diameters. Writes the CSV and a JSON with the same numbers
(plus mean and std of each column). A file that cannot be read or is not a
binary mask is named in one line and skipped (exit status 1); an empty mask
gets a row (densities 0) and a warning.
"""
from __future__ import annotations

import json
import math
import pathlib
import sys
import time

import numpy as np
from absl import flags

from cosnet_jax import biomarkers, cli, inputs, places
from cosnet_jax.data.errors import DataError
from cosnet_jax.data.image_io import load_image, raw_array
from cosnet_jax.errors import UserError
from cosnet_jax.inference import evaluate_split
from cosnet_jax.inference.segmenter import Segmenter, input_spacing

FLAGS = flags.FLAGS


def parse_roi(text: str | None) -> tuple[float, ...] | None:
  """'3' -> (3.0,), '1,3' -> (1.0, 3.0), None -> None (UserError otherwise)."""
  if not text:
    return None
  try:
    values = tuple(float(v) for v in text.split(','))
  except ValueError:
    raise UserError(f'--roi_mm {text!r}: expected D or INNER,OUTER (mm)') from None
  return values


def measure_images(items, *, spacing_um: float | None = None, fov_mm: float | None = None,
                   roi_mm=None, stream=sys.stderr):
  """Measures each (name, mask) of `items` (an iterable; a mask may be an
  exception to report instead).

  Returns:
    (rows, failures): rows are dicts 'image', 'spacing_um' and the
    biomarkers.column_names(...) values; failures are (name, message).
  """
  rows, failures = [], []
  for name, mask in items:
    if isinstance(mask, Exception):
      failures.append((name, str(mask)))
      print(f'error: {mask}', file=stream)
      continue
    spacing = input_spacing(np.shape(mask)[1], spacing_um, fov_mm)
    try:
      values = biomarkers.measure(mask, spacing, roi_mm=roi_mm, name=name)
    except UserError as e:
      failures.append((name, str(e)))
      print(f'error: {e}', file=stream)
      continue
    if values['vad'] == 0:
      print(f'warning: {name}: no vessel pixel in the analysed region; densities 0, '
            'the other measures undefined', file=stream)
    rows.append({'image': name, 'spacing_um': spacing, **values})
  return rows, failures


def _cell(v) -> str:
  if isinstance(v, float):
    return '' if math.isnan(v) else f'{v:.6g}'
  return '' if v is None else str(v)


def write_table(rows: list[dict], csv_path: str | pathlib.Path, *, spacing_given: bool,
                roi_mm=None, source: str = '') -> pathlib.Path:
  """Writes the CSV and, beside it, a JSON with the same numbers; returns the JSON path."""
  csv_path = pathlib.Path(csv_path)
  columns = ['image', 'spacing_um'] + biomarkers.column_names(1.0 if spacing_given else None)
  csv_path.parent.mkdir(parents=True, exist_ok=True)
  lines = [','.join(columns)] + [','.join(_cell(r.get(c)) for c in columns) for r in rows]
  with places.naming(csv_path):
    csv_path.write_text('\n'.join(lines) + '\n')
  summary = {}
  for c in columns[2:]:
    v = np.array([r[c] for r in rows], np.float64)
    v = v[~np.isnan(v)]
    summary[c] = {'mean': float(v.mean()) if len(v) else None,
                  'std': float(v.std()) if len(v) else None, 'n': int(len(v))}
  nan_to_none = lambda r: {k: (None if isinstance(v, float) and math.isnan(v) else v)
                           for k, v in r.items()}
  table = {'units': 'mm, um' if spacing_given else 'pixels', 'roi_mm': roi_mm,
           'source': source, 'definitions': 'docs/biomarkers.md',
           'images': [nan_to_none(r) for r in rows], 'summary': summary}
  json_path = csv_path.with_suffix('.json')
  with places.naming(json_path):
    json_path.write_text(json.dumps(table, indent=1) + '\n')
  return json_path


def _masks(found: inputs.Inputs, segmenter, threshold, spacing_um, fov_mm):
  """(name, mask or the exception that kept it from being read) per input file."""
  for f in found.files:
    name = found.names[f]
    try:
      if segmenter is None:
        yield name, biomarkers.as_binary(raw_array(f), str(f))
      else:
        _, mask = segmenter(load_image(f), threshold=threshold, spacing_um=spacing_um,
                            fov_mm=fov_mm)
        yield name, mask
    except (DataError, biomarkers.MaskError) as e:
      yield name, e


def predict_outputs(found: inputs.Inputs) -> inputs.Inputs:
  """Of a cosnet-predict output folder (<name>_mask / _prob / _overlay), the masks,
  named <name>; any other listing as it is."""
  masks = [f for f in found.files if found.names[f].endswith('_mask')]
  if not masks or not any(found.names[f].endswith('_prob') for f in found.files):
    return found
  names = {f: found.names[f][:-len('_mask')] for f in masks}
  return inputs.Inputs(masks, names, found.skipped_folders, found.unreadable)


def define_flags():
  flags.DEFINE_string('input', None, 'A mask (or scan, with --model) or a folder of them.')
  flags.DEFINE_string('output', None, 'The CSV to write (a .json beside it too).')
  cli.define_spacing_flags()
  flags.DEFINE_string('model', None, 'Segment scans with this model first (a shipped name, '
                      'a .cosnet file or a workdir); without it the inputs are masks.')
  flags.DEFINE_string('threshold', None, "With --model: 'otsu' or a float in (0, 1) "
                      "(default: the model's).")
  flags.DEFINE_string('roi_mm', None, 'Measure a centred disc of this diameter (mm), or '
                      'the annulus INNER,OUTER (mm).')
  flags.DEFINE_bool('recursive', False, 'Also read the images in subfolders.')
  flags.mark_flags_as_required(['input', 'output'])


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.spacing_um is not None and FLAGS.fov_mm is not None:
    raise UserError('give --spacing_um or --fov_mm, not both')
  input_spacing(1, FLAGS.spacing_um, FLAGS.fov_mm)     # checks the values early
  roi = parse_roi(FLAGS.roi_mm)
  if roi is not None:
    biomarkers.region((8, 8), FLAGS.spacing_um or (FLAGS.fov_mm and 1.0), roi)
  out = places.writable_file(FLAGS.output, '--output')
  found = inputs.find_images(FLAGS.input, FLAGS.recursive)
  if not FLAGS.model:
    found = predict_outputs(found)
  segmenter, threshold = None, None
  if FLAGS.model:
    segmenter = Segmenter.from_pretrained(FLAGS.model)
    threshold = (evaluate_split.parse_threshold(FLAGS.threshold)
                 if FLAGS.threshold is not None else None)
    if FLAGS.spacing_um is not None:
      segmenter.scale_for(1, FLAGS.spacing_um)   # the spacing against the model's, early
  if found.skipped_folders:
    print(f'{len(found.skipped_folders)} subfolder(s) skipped (--recursive reads them)',
          file=sys.stderr)
  t0 = time.time()
  rows, failures = measure_images(
      _masks(found, segmenter, threshold, FLAGS.spacing_um, FLAGS.fov_mm),
      spacing_um=FLAGS.spacing_um, fov_mm=FLAGS.fov_mm, roi_mm=roi)
  failures += found.unreadable
  for path, why in found.unreadable:
    print(f'error: {path}: {why}', file=sys.stderr)
  json_path = write_table(rows, out, spacing_given=(FLAGS.spacing_um or FLAGS.fov_mm) is not None,
                          roi_mm=roi, source=FLAGS.model or 'masks')
  print(f'{len(rows)}/{len(rows) + len(failures)} images measured in '
        f'{time.time() - t0:.1f} s: {out}, {json_path}')
  if failures:
    print(f'{len(failures)} failed: ' + ', '.join(f for f, _ in failures), file=sys.stderr)
    sys.exit(1)


def cli_main():
  cli.run(main, define_flags)


if __name__ == '__main__':
  cli_main()
