"""The per-image transform the pipeline applies before augmentation (CLAHE + [0, 1] scaling)."""
import numpy as np

from cosnet_jax.data.clahe import clahe
from cosnet_jax.data.image_io import to_uint8


def preprocess_u8(image_u8: np.ndarray, data_cfg) -> np.ndarray:
  """uint8 [H, W] -> uint8 [H, W]: CLAHE (if ``data_cfg.clahe``) of the 8-bit image."""
  if data_cfg.clahe:
    return clahe(image_u8, data_cfg.clahe_clip_limit, data_cfg.clahe_tile_grid)
  return np.asarray(image_u8, np.uint8)


def preprocess(image: np.ndarray, data_cfg) -> np.ndarray:
  """float32 [H, W] in [0, 1] -> float32 [H, W] in [0, 1].

  Quantises to 8 bit (as the stored datasets are), applies CLAHE when
  ``data_cfg.clahe`` and divides by 255: exactly what training and evaluation
  see for the same file.
  """
  out = preprocess_u8(to_uint8(image), data_cfg)
  return out.astype(np.float32) / np.float32(255.0)
