"""The datasets: names, where to get them, pixel spacing, and their in-memory types.

A dataset is named `base[/config]` (`config.data.name`): 'octa500/<fov>_
<projection>_<label>', 'rose1/<layer>', 'rose2', 'rossa', 'octa_folder',
'synthetic_octa'. Readers (files_reader.py, tfds_reader.py) turn one into a
`Prepared` dataset: per split, images uint8 [H, W] (the stored 8-bit form,
before CLAHE) and labels uint8 [H, W] packed as bits (`pack_labels`: bit 0
mask, bit 1 thick, bit 2 thin).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

import numpy as np

from cosnet_jax.data.errors import DataError

DATASETS = ('octa500', 'rose1', 'rose2', 'rossa', 'octa_folder', 'synthetic_octa')
ROSE1_LAYERS = ('svc', 'dvc', 'svc_dvc')

# Pixel spacing (micrometres per pixel): OCTA-500 3M is 3 x 3 mm at 304 px,
# 6M 6 x 6 mm at 400 px (published). ROSSA's is unpublished and taken as 3M's,
# where a 3M model scores best on it (experiments/README.md, "Scale").
SPACING_UM = {
    'octa500/3m': 3000.0 / 304,
    'octa500/6m': 6000.0 / 400,
    'rossa': 3000.0 / 304,
}

OCTA500_SPLITS = {
    '6m': {'train': (10001, 10180), 'val': (10181, 10200), 'test': (10201, 10300)},
    '3m': {'train': (10301, 10440), 'val': (10441, 10450), 'test': (10451, 10500)},
}
OCTA500_PROJECTIONS = ('OCTA(FULL)', 'OCTA(ILM_OPL)', 'OCTA(OPL_BM)',
                       'OCT(FULL)', 'OCT(ILM_OPL)', 'OCT(OPL_BM)')
OCTA500_LABELS = ('GT_LargeVessel', 'GT_Capillary', 'GT_Artery', 'GT_Vein', 'GT_FAZ')
# ROSE ships no validation split: val is every 10th official-train image.
ROSE_VAL_FRACTION = 0.1

DOWNLOAD = {
    'octa500': 'https://ieee-dataport.org/open-access/octa-500',
    'rose1': 'https://imed.nimte.ac.cn/dataofrose.html',
    'rose2': 'https://imed.nimte.ac.cn/dataofrose.html',
    'rossa': 'https://github.com/nhjydywd/OCTA-FRNet',
}

OCTA500_INSTRUCTIONS = """\
OCTA-500 (Li et al., Medical Image Analysis 2024) is released for research use at
https://ieee-dataport.org/open-access/octa-500 . Download and unzip it, then set
config.data.root to the folder that holds OCTA_3M/ and/or OCTA_6M/ (the original
release layout):
  OCTA_3M/ProjectionMaps/OCTA(ILM_OPL)/10301.bmp   (also 'Projection Maps/')
  OCTA_3M/GT_LargeVessel/10301.bmp                  (also 'Label/GT_LargeVessel/')
A flat copy {train,val,test}/{image,label}/<id>.bmp (one projection, one label)
is accepted too. Splits follow the official subject ids (6M: train 10001-10180,
val 10181-10200, test 10201-10300; 3M: train 10301-10440, val 10441-10450,
test 10451-10500)."""

ROSE_INSTRUCTIONS = """\
ROSE (Ma et al., IEEE TMI 2021) is released on request for research use:
https://imed.nimte.ac.cn/dataofrose.html . Unpack it so that config.data.root
holds ROSE-1/ and/or ROSE-2/ (or points at ROSE-1/ or ROSE-2/ itself):
  ROSE-1/{SVC,DVC,SVC_DVC}/{train,test}/{img,gt}/   (SVC also thick_gt/, thin_gt/)
  ROSE-2/{train,test}/{original,gt}/
Images and labels are paired by file name (stem)."""

ROSSA_INSTRUCTIONS = """\
ROSSA (Ning et al., ICASSP 2024; MIT licence) is distributed with OCTA-FRNet:
https://github.com/nhjydywd/OCTA-FRNet . Set config.data.root to the folder
holding {train_manual,train_sam,val,test}/{image,label}/<n>.png (splits that
are absent are skipped)."""

FOLDER_INSTRUCTIONS = """\
octa_folder reads any folder laid out as {split}/{image,label}/<id>.<ext>
(optional {split}/thick/ and {split}/thin/ for two-branch labels), or a single
pair of folders image/ and label/ (read as the split 'train'); set
config.data.root to it. Images and labels are paired by file name (stem)."""

INSTRUCTIONS = {
    'octa500': OCTA500_INSTRUCTIONS, 'rose1': ROSE_INSTRUCTIONS, 'rose2': ROSE_INSTRUCTIONS,
    'rossa': ROSSA_INSTRUCTIONS, 'octa_folder': FOLDER_INSTRUCTIONS,
}


def parse_name(name: str) -> tuple[str, str | None]:
  """'octa500/3m_ilm_opl_largevessel' -> ('octa500', '3m_ilm_opl_largevessel')."""
  base, _, config = str(name).partition('/')
  if base not in DATASETS:
    raise DataError(f'Unknown dataset {name!r} (config.data.name); known: '
                    + ', '.join(sorted(DATASETS)))
  return base, (config or None)


def octa500_configs() -> dict[str, tuple[str, str, str]]:
  """{'3m_ilm_opl_largevessel': ('3m', 'OCTA(ILM_OPL)', 'GT_LargeVessel'), ...} (60)."""
  names = {}
  for fov in ('3m', '6m'):
    for proj in OCTA500_PROJECTIONS:
      modality, layer = proj[:-1].split('(')
      pname = layer.lower() if modality == 'OCTA' else 'oct_' + layer.lower()
      for label in OCTA500_LABELS:
        names[f'{fov}_{pname}_{label[3:].lower()}'] = (fov, proj, label)
  return names


def octa500_config(config: str | None) -> tuple[str, str, str]:
  """'3m_ilm_opl_largevessel' -> ('3m', 'OCTA(ILM_OPL)', 'GT_LargeVessel')."""
  names = octa500_configs()
  if config not in names:
    raise DataError(f'Dataset octa500 needs a config (octa500/<config>); got '
                    f'{config!r}. For example: octa500/3m_ilm_opl_largevessel, '
                    'octa500/6m_ilm_opl_largevessel (fov 3m|6m, projection, label)')
  return names[config]


def known_spacing(name: str) -> float:
  """The published pixel spacing of dataset `name` (um), 0 if unknown."""
  for prefix, um in SPACING_UM.items():
    if name.startswith(prefix):
      return um
  return 0.0


def natural_key(s: str):
  """Sort key of ids that orders '2' before '10'."""
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r'(\d+)', s)]


def pack_labels(mask: np.ndarray, thick: np.ndarray | None = None,
                thin: np.ndarray | None = None) -> np.ndarray:
  """{0, 1} label maps [H, W] -> uint8 [H, W]: bit 0 mask, bit 1 thick, bit 2 thin.

  A dataset with one label has thick = thin = mask.
  """
  mask = np.asarray(mask, np.uint8)
  thick = mask if thick is None else np.asarray(thick, np.uint8)
  thin = mask if thin is None else np.asarray(thin, np.uint8)
  return (mask | (thick << 1) | (thin << 2)).astype(np.uint8)


LABEL_BITS = ('mask', 'thick', 'thin')


def unpack_labels(packed: np.ndarray) -> dict[str, np.ndarray]:
  """uint8 [...] packed labels -> {'mask', 'thick', 'thin'}: float32 [..., 1] in {0, 1}."""
  return {k: ((packed >> bit) & 1).astype(np.float32)[..., None]
          for bit, k in enumerate(LABEL_BITS)}


def vessel_mask(packed: np.ndarray) -> np.ndarray:
  """The vessel label (bit 0) of packed labels, uint8 {0, 1}."""
  return (np.asarray(packed) & 1).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class ExampleFiles:
  """Files of one example; thick / thin are None where the dataset has one label."""
  id: str
  image: str
  mask: str
  thick: Optional[str] = None
  thin: Optional[str] = None


@dataclasses.dataclass
class RawSplit:
  """One split, decoded: images uint8 [H_i, W_i], packed labels uint8 [H_i, W_i], ids."""
  images: list
  labels: list
  ids: list

  def __len__(self):
    return len(self.ids)


@dataclasses.dataclass
class Prepared:
  """A decoded dataset: its splits (as the files give them) and facts about it."""
  name: str
  fingerprint: str
  splits: dict            # {split: RawSplit}
  has_thick_thin: bool
  warnings: list = dataclasses.field(default_factory=list)

  @property
  def image_size(self) -> tuple[int, int]:
    """(max H, max W) over all splits."""
    shapes = [im.shape for s in self.splits.values() for im in s.images]
    return (max(h for h, _ in shapes), max(w for _, w in shapes))
