"""Evaluation: per-image metrics and reports (json / md / ROC / overlays). NumPy only.

Modules:
  metrics  per-image metrics (AUC, ACC, SEN, SPE, Dice, IoU, Kappa, FDR,
           G-mean, clDice), mean / std and pooled summaries.
  report   metrics.json, metrics.md, roc.png, overlay and mask PNGs.
The JAX side (forward passes over datasets and images) is cosnet_jax.inference.
"""
from cosnet_jax.evaluation import metrics
from cosnet_jax.evaluation import report
from cosnet_jax.evaluation.metrics import METRIC_NAMES
from cosnet_jax.evaluation.metrics import evaluate_images
from cosnet_jax.evaluation.metrics import image_metrics
from cosnet_jax.evaluation.metrics import summarize
from cosnet_jax.evaluation.report import write_report
