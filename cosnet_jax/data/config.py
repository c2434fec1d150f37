"""Defaults of the ``config.data`` section (see docs/design.md, section "data")."""
import ml_collections


def default_data_config() -> ml_collections.ConfigDict:
  """Returns the data config with every field the data layer reads.

  Fields:
    name: dataset, e.g. 'synthetic_octa', 'octa500/3m_ilm_opl_largevessel',
      'rose1/svc', 'rose1/dvc', 'rose1/svc_dvc', 'rose2', 'rossa', 'octa_folder'.
    root: folder of the downloaded dataset ('' for synthetic_octa).
    tfds_dir: where prepared TFDS data goes ('' = ~/tensorflow_datasets).
    train_split / val_split / test_split: TFDS split names or expressions
      ('a+b', 'train[:20]': the first 20 examples in the prepared order).
    clahe, clahe_clip_limit, clahe_tile_grid: CLAHE with cv2 semantics on the
      8-bit image (tile_grid tiles along each axis).
    crop_size: side of the square training crop (0 = whole image). Training
      arrays are rounded up to a multiple of pad_multiple; the extra pixels are
      padding with valid=0.
    crop_vessel_prob: probability that a crop is centred on a vessel pixel
      (otherwise the centre is uniform).
    rotation_deg: training rotation is uniform in [-rotation_deg, rotation_deg].
    flip: random horizontal and vertical flips (each with probability 1/2).
    intensity_jitter: contrast factor in 1 +- j and brightness offset in +-j.
    pad_multiple: spatial sizes fed to the network are multiples of this.
    num_workers: threads that augment examples of a training batch.
    prefetch: batches prepared ahead in a background thread (0 = none).
    synthetic: the procedural dataset (counts per split, image size, seed).
  """
  cfg = ml_collections.ConfigDict()
  cfg.name = 'synthetic_octa'
  cfg.root = ''
  cfg.tfds_dir = ''
  cfg.train_split = 'train'
  cfg.val_split = 'val'
  cfg.test_split = 'test'
  cfg.clahe = True
  cfg.clahe_clip_limit = 2.0
  cfg.clahe_tile_grid = 8
  cfg.crop_size = 0
  cfg.crop_vessel_prob = 0.5
  cfg.rotation_deg = 10.0
  cfg.flip = True
  cfg.intensity_jitter = 0.1
  cfg.pad_multiple = 32
  cfg.num_workers = 2
  cfg.prefetch = 2
  cfg.synthetic = ml_collections.ConfigDict()
  cfg.synthetic.num_train = 48
  cfg.synthetic.num_val = 8
  cfg.synthetic.num_test = 8
  cfg.synthetic.size = 304
  cfg.synthetic.seed = 0
  return cfg
