"""COSNet in JAX/Flax: OCTA vessel segmentation with global contrastive learning.

Commands: cosnet-train (cosnet_jax.main), cosnet-evaluate, cosnet-predict,
cosnet-export, cosnet-verify, cosnet-crossdomain. From Python:
`cosnet_jax.inference.Segmenter.from_pretrained(name_or_file)`.
"""
__version__ = '1.0.0'
