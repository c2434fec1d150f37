"""COSNet in JAX/Flax: OCTA vessel segmentation with global contrastive learning."""
