"""TFDS dataset builders for the OCTA datasets (written as array_record; read without TF).

Every example has the features
  image  uint8 [H, W, 1] (8-bit; 16-bit / RGB files are converted, see image_io),
  mask, thick, thin  uint8 [H, W, 1] in {0, 255},
  id     text (file stem / subject id).
Where a dataset has one label, thick = thin = mask (and the dataset metadata says
has_thick_thin = False). Metadata also holds image_size = [max H, max W].

Builders: octa500 (60 configs fov x projection x label), rose1 (svc, dvc,
svc_dvc), rose2, rossa, octa_folder (any flat folder), synthetic_octa
(procedural; no download). The manual datasets read ``manual_dir`` (=
config.data.root, see cosnet_jax.data.source).
"""
import dataclasses
import inspect

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from cosnet_jax.data import datasets, layouts, synthetic
from cosnet_jax.data.errors import DatasetNotFoundError, ShapeMismatchError
from cosnet_jax.data.image_io import encode_png, image_size, read_image_u8, read_label

_FEATURES = dict(
    image=dict(shape=(None, None, 1), dtype=np.uint8),
    mask=dict(shape=(None, None, 1), dtype=np.uint8),
    thick=dict(shape=(None, None, 1), dtype=np.uint8),
    thin=dict(shape=(None, None, 1), dtype=np.uint8),
)


def _features():
  d = {k: tfds.features.Image(**v) for k, v in _FEATURES.items()}
  d['id'] = tfds.features.Text()
  return tfds.features.FeaturesDict(d)


def encode_files(ex: datasets.ExampleFiles) -> dict:
  """Decodes, checks and re-encodes one example's files.

  Raises:
    ImageReadError / LabelValueError: naming the bad file.
    ShapeMismatchError: naming the image and the label of another size.
  """
  image = read_image_u8(ex.image)
  mask = read_label(ex.mask)
  labels = {'mask': (mask, ex.mask)}
  labels['thick'] = (read_label(ex.thick), ex.thick) if ex.thick else labels['mask']
  labels['thin'] = (read_label(ex.thin), ex.thin) if ex.thin else labels['mask']
  for arr, path in labels.values():
    if arr.shape != image.shape:
      raise ShapeMismatchError(
          f'Image {ex.image} is {image.shape[0]}x{image.shape[1]} but label '
          f'{path} is {arr.shape[0]}x{arr.shape[1]}')
  out = {'image': encode_png(image), 'id': ex.id}
  for k, (arr, _) in labels.items():
    out[k] = encode_png(arr * np.uint8(255))
  return out


class _CodePathMixin:
  """Points ``code_path`` at this file.

  tfds' default resolution of a builder defined inside a package touches the
  optional ``importlib_resources`` backport, which is not installed here.
  """

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    return epath.Path(inspect.getfile(cls))


class _FileBuilder(_CodePathMixin, tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared logic of the builders that read files from ``manual_dir``."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  INSTRUCTIONS = ''

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__, features=_features(),
        metadata=tfds.core.MetadataDict())

  def _scan(self, root: str) -> dict:
    raise NotImplementedError

  def _manual_root(self, dl_manager) -> str:
    try:
      return str(dl_manager.manual_dir)
    except (AssertionError, ValueError, FileNotFoundError) as e:
      raise DatasetNotFoundError(
          f'Dataset folder for {self.name} not found: {e}\n{self.INSTRUCTIONS}') from e

  def _split_generators(self, dl_manager):
    splits = self._scan(self._manual_root(dl_manager))
    sizes = [image_size(ex.image) for files in splits.values() for ex in files]
    self.info.metadata['image_size'] = [max(s[0] for s in sizes), max(s[1] for s in sizes)]
    self.info.metadata['has_thick_thin'] = any(
        ex.thick is not None for files in splits.values() for ex in files)
    return {name: self._generate_examples(files) for name, files in splits.items()}

  def _generate_examples(self, files):
    for ex in files:
      yield ex.id, encode_files(ex)


@dataclasses.dataclass
class Octa500Config(tfds.core.BuilderConfig):
  fov: str = '3m'
  projection: str = 'OCTA(ILM_OPL)'
  label: str = 'GT_LargeVessel'


def _octa500_configs():
  return [Octa500Config(name=name, fov=fov, projection=proj, label=label,
                        description=f'OCTA-500 {fov.upper()}, projection {proj}, label {label}.')
          for name, (fov, proj, label) in datasets.octa500_configs().items()]


class Octa500(_FileBuilder):
  """OCTA-500 (3M / 6M) en-face projections with one vessel / FAZ label; thick = thin = mask."""

  BUILDER_CONFIGS = _octa500_configs()
  MANUAL_DOWNLOAD_INSTRUCTIONS = datasets.OCTA500_INSTRUCTIONS
  INSTRUCTIONS = datasets.OCTA500_INSTRUCTIONS

  def _scan(self, root):
    c = self.builder_config
    return layouts.scan_octa500(root, c.fov, c.projection, c.label)


class Rose1(_FileBuilder):
  """ROSE-1 (SVC, DVC, SVC+DVC); val = every 10th official-train image."""

  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name='svc', description='SVC images; gt, thick_gt, thin_gt.'),
      tfds.core.BuilderConfig(name='dvc', description='DVC images; gt (thick = thin = gt).'),
      tfds.core.BuilderConfig(
          name='svc_dvc',
          description='SVC+DVC images and gt; thick / thin from SVC thick_gt / thin_gt.'),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = datasets.ROSE_INSTRUCTIONS
  INSTRUCTIONS = datasets.ROSE_INSTRUCTIONS

  def _scan(self, root):
    return layouts.scan_rose1(root, self.builder_config.name)


class Rose2(_FileBuilder):
  """ROSE-2 (centreline labels; thick = thin = gt); val = every 10th official-train image."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = datasets.ROSE_INSTRUCTIONS
  INSTRUCTIONS = datasets.ROSE_INSTRUCTIONS

  def _scan(self, root):
    return layouts.scan_rose2(root)


class Rossa(_FileBuilder):
  """ROSSA: splits train_manual, train_sam, val, test (those present); thick = thin = mask."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = datasets.ROSSA_INSTRUCTIONS
  INSTRUCTIONS = datasets.ROSSA_INSTRUCTIONS

  def _scan(self, root):
    return layouts.scan_rossa(root)


class OctaFolder(_FileBuilder):
  """Any folder {split}/{image,label}[,thick,thin]/<id>.<ext>, paired by file stem."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = datasets.FOLDER_INSTRUCTIONS
  INSTRUCTIONS = datasets.FOLDER_INSTRUCTIONS

  def _scan(self, root):
    return layouts.scan_flat(root)


@dataclasses.dataclass
class SyntheticOctaConfig(tfds.core.BuilderConfig):
  num_train: int = 48
  num_val: int = 8
  num_test: int = 8
  size: int = 304
  seed: int = 0


def synthetic_config(num_train, num_val, num_test, size, seed) -> SyntheticOctaConfig:
  """The config for these parameters; its name encodes all of them."""
  return SyntheticOctaConfig(
      name=f'n{num_train}-{num_val}-{num_test}_s{size}_seed{seed}',
      num_train=int(num_train), num_val=int(num_val), num_test=int(num_test),
      size=int(size), seed=int(seed),
      description='Procedural OCTA (cosnet_jax.data.synthetic).')


class SyntheticOcta(_CodePathMixin, tfds.core.GeneratorBasedBuilder):
  """Procedural OCTA images with thick / thin vessel labels (no download needed)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = [synthetic_config(48, 8, 8, 304, 0)]

  def _info(self):
    c = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__, features=_features(),
        metadata=tfds.core.MetadataDict(image_size=[c.size, c.size], has_thick_thin=True))

  def _split_generators(self, dl_manager):
    del dl_manager
    c = self.builder_config
    counts = {'train': c.num_train, 'val': c.num_val, 'test': c.num_test}
    return {name: self._generate_examples(i, name, n)
            for i, (name, n) in enumerate(counts.items()) if n > 0}

  def _generate_examples(self, split_index, split, n):
    c = self.builder_config
    for i in range(n):
      ex = synthetic.generate_octa(synthetic.example_rng(c.seed, split_index, i), c.size)
      key = f'{split}_{i:05d}'
      out = {k: encode_png(ex[k] * np.uint8(255)) for k in ('mask', 'thick', 'thin')}
      out['image'] = encode_png(ex['image'])
      out['id'] = f'synthetic_{key}'
      yield key, out


BUILDERS = {
    'octa500': Octa500,
    'rose1': Rose1,
    'rose2': Rose2,
    'rossa': Rossa,
    'octa_folder': OctaFolder,
    'synthetic_octa': SyntheticOcta,
}
