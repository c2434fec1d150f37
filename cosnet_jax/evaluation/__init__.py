"""Evaluation: metrics, reports (json / md / ROC / overlays), tiling helpers.

NumPy only (no JAX). Modules:
  metrics  per-image metrics (AUC, ACC, SEN, SPE, Dice, IoU, Kappa, FDR,
           G-mean, clDice), mean / std and pooled summaries.
  report   metrics.json, metrics.md, roc.png, overlay PNGs.
  tiling   pad_to_multiple / crop_back / sliding_window for inference.
"""
from cosnet_jax.evaluation import metrics
from cosnet_jax.evaluation import report
from cosnet_jax.evaluation import tiling
from cosnet_jax.evaluation.metrics import METRIC_NAMES
from cosnet_jax.evaluation.metrics import evaluate_images
from cosnet_jax.evaluation.metrics import image_metrics
from cosnet_jax.evaluation.metrics import summarize
from cosnet_jax.evaluation.report import write_report
from cosnet_jax.evaluation.tiling import crop_back
from cosnet_jax.evaluation.tiling import pad_to_multiple
from cosnet_jax.evaluation.tiling import sliding_window
