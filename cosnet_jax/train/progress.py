"""What the trainer prints while it runs: progress lines with a rate and an ETA."""
from __future__ import annotations

import time

# The scalars shown on a progress line (all of them go to the logs).
SHOWN = ('loss', 'seg_thick', 'seg_thin', 'contrast_thick', 'contrast_thin')


def format_duration(seconds: float) -> str:
  """'HH:MM:SS', with days past 24 hours ('2d 03:04:05')."""
  seconds = max(int(round(seconds)), 0)
  days, rest = divmod(seconds, 86400)
  clock = time.strftime('%H:%M:%S', time.gmtime(rest))
  return f'{days}d {clock}' if days else clock


def eta_seconds(now: float, t_first: float | None, first_step: int, step: int,
                total: int) -> float | None:
  """Time left from the steps since `first_step` (after the compiling first step)."""
  if t_first is None or step <= first_step:
    return None
  return (now - t_first) / (step - first_step) * (total - step)


def progress_line(stage: str, step: int, total: int, images_per_s: float,
                  eta: float | None, scalars: dict) -> str:
  """'[stage1] step 50/1500 loss=... 18.2 img/s ETA 00:41:10'."""
  parts = ' '.join(f'{k}={v:.4g}' for k, v in sorted(scalars.items()) if k in SHOWN)
  left = 'ETA --:--:--' if eta is None else f'ETA {format_duration(eta)}'
  return f'[{stage}] step {step}/{total} {parts} {images_per_s:.2f} img/s {left}'
