"""Inference: trained models and their forward passes over images and datasets (JAX).

Modules:
  trained         a trained model from a workdir, a model file or a shipped name;
                  export to a model file
  steps           eval-mode forward passes, data-parallel and jitted
  runner          a step over every image of a dataset split
  tta             test-time augmentation (mirrors, one-pixel shifts)
  tiling          padding, cropping back and sliding windows for any image size
  segmenter       `Segmenter`: numpy image in, probabilities and mask out
  evaluate_split  a model on a dataset split: maps, metrics and the report
Metrics and reports themselves are NumPy (cosnet_jax.evaluation).
"""
from cosnet_jax.inference.segmenter import Segmenter
from cosnet_jax.inference.trained import TrainedModel, load

__all__ = ['Segmenter', 'TrainedModel', 'load']
