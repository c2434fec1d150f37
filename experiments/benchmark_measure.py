r"""Time to measure a mask against the time to segment its scan, on this CPU.

  python experiments/benchmark_measure.py --model octa500-3m \
      --image ../shared/data/OCTA500_6M/val/image/10181.bmp --fov_mm 6

Prints one line: the median of --repeats runs of segmenting the scan
(Segmenter, the model's spacing handling) and of measuring the mask
(cosnet_jax.biomarkers.measure), after one warm-up of each (jit compilation,
numba compilation inside skan).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from cosnet_jax import biomarkers  # noqa: E402
from cosnet_jax.data.image_io import load_image  # noqa: E402
from cosnet_jax.inference import Segmenter  # noqa: E402


def main():
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--model', default='octa500-3m')
  ap.add_argument('--image', required=True)
  ap.add_argument('--fov_mm', type=float, default=None)
  ap.add_argument('--repeats', type=int, default=5)
  args = ap.parse_args()
  seg = Segmenter.from_pretrained(args.model)
  image = load_image(args.image)
  spacing = args.fov_mm * 1000 / image.shape[1] if args.fov_mm else None

  def timed(fn):
    fn()
    ts = []
    for _ in range(args.repeats):
      t = time.perf_counter()
      out = fn()
      ts.append(time.perf_counter() - t)
    return statistics.median(ts), out

  t_seg, (_, mask) = timed(lambda: seg(image, fov_mm=args.fov_mm))
  t_measure, values = timed(lambda: biomarkers.measure(mask, spacing))
  print(json.dumps({'image': args.image, 'shape': list(image.shape), 'model': args.model,
                    'segment_s': round(t_seg, 4), 'measure_s': round(t_measure, 4),
                    'vad': round(values['vad'], 4)}))


if __name__ == '__main__':
  main()
