r"""How much of a run's error do other runs share? Average the probability maps
of several trained runs (or checkpoints) and score the average.

  python experiments/ensemble.py RUN_A RUN_B RUN_C [--tta flips] \
      --out experiments/results/diagnose/ensemble/NAME.json

Each member is `WORKDIR[:CHECKPOINT]` (`best`, the default, `latest` or a
step, as `cosnet_jax.evaluate --checkpoint` takes it). Every member predicts
the val and test splits (through `evaluate.predict_splits`, with `--tta`); the
stage-1 and the final maps are averaged over the members image by image, and
the average is thresholded per image (Otsu) as in every table. Written: each
member's mean Dice, the ensemble's, and the ensemble's per-image test Dice.

An ensemble is not a row of the ablation (it costs one training budget per
member). It is a read-out: if the average of independently trained models
scores little above its members, their errors are shared (where the labels
or the image leave them), not chance.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'experiments'))

SPLITS = ('val', 'test')


def parse_member(text: str) -> tuple[str, str | int]:
  """'WORKDIR[:CHECKPOINT]' -> (workdir, 'best' | 'latest' | step)."""
  workdir, sep, ckpt = text.rpartition(':')
  if not sep or '/' in ckpt or not ckpt:
    return text, 'best'
  if ckpt.isdigit():
    return workdir, int(ckpt)
  if ckpt not in ('best', 'latest'):
    raise ValueError(f'member {text!r}: checkpoint {ckpt!r} is not best, latest or a step')
  return workdir, ckpt


def mean_dice(probs: list[np.ndarray], masks: list[np.ndarray]) -> tuple[float, list[float]]:
  """Mean and per-image Dice of probability maps under the per-image Otsu threshold."""
  import diagnose  # pylint: disable=g-import-not-at-top
  per_image = [diagnose._dice(p, m, 'otsu') for p, m in zip(probs, masks)]  # pylint: disable=protected-access
  return float(np.mean(per_image)), per_image


def average_members(members: list[list[np.ndarray]]) -> list[np.ndarray]:
  """[member][image] maps -> [image] mean over the members."""
  if len({len(m) for m in members}) != 1:
    raise ValueError(f'members predicted different image counts: {[len(m) for m in members]}')
  return [np.mean([m[i] for m in members], axis=0) for i in range(len(members[0]))]


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('members', nargs='+', help='WORKDIR[:best|latest|STEP]')
  p.add_argument('--tta', default='none', help='none | hflip | flips | flips_shifts (each member)')
  p.add_argument('--out', required=True, help='JSON file to write')
  args = p.parse_args(argv)
  members = [parse_member(m) for m in args.members]
  for workdir, _ in members:
    if not (pathlib.Path(workdir) / 'config.json').is_file():
      raise SystemExit(f'{workdir}: not a training workdir (no config.json)')
  from cosnet_jax import evaluate  # pylint: disable=g-import-not-at-top
  maps: dict[str, list] = {}
  masks: dict[str, list] = {}
  out = {'members': args.members, 'tta': args.tta, 'member_steps': [], 'member_dice': []}
  for workdir, ckpt in members:
    pred = evaluate.predict_splits(workdir, list(SPLITS), checkpoint=ckpt, tta=args.tta)
    final = pred['outputs'][-1]
    scores = {}
    for split in SPLITS:
      res = pred['results'][split]
      masks[split] = [r['mask'] for r in res]
      for output, name in (('coarse', 'stage1'), (final, 'final')):
        probs = [r[output] for r in res]
        maps.setdefault(f'{split}/{name}', []).append(probs)
        scores[f'{split}/{name}'] = mean_dice(probs, masks[split])[0]
    out['member_steps'].append(pred['steps'])
    out['member_dice'].append(scores)
    print(workdir, ckpt, pred['steps'], {k: round(v, 4) for k, v in scores.items()}, flush=True)
  out['ensemble'], out['ensemble_test_per_image'] = {}, {}
  for key, member_maps in maps.items():
    split = key.split('/')[0]
    dice, per_image = mean_dice(average_members(member_maps), masks[split])
    out['ensemble'][key] = dice
    if split == 'test':
      out['ensemble_test_per_image'][key] = [round(d, 5) for d in per_image]
  out['member_mean'] = {k: float(np.mean([d[k] for d in out['member_dice']]))
                        for k in out['ensemble']}
  print('ensemble', {k: round(v, 4) for k, v in out['ensemble'].items()})
  print('members ', {k: round(v, 4) for k, v in out['member_mean'].items()})
  path = pathlib.Path(args.out)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(out, indent=1) + '\n')
  return out


if __name__ == '__main__':
  main()
