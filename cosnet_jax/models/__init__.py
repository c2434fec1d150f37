"""COSNet models: ResNeSt encoder, two-branch decoder, heads, refinement, converter."""
from cosnet_jax.models.config import (PRESETS, ModelSpec, default_model_config,
                                      default_refine_config, resolve_model_config)
from cosnet_jax.models.cosnet import COSNet, build_cosnet
from cosnet_jax.models.initialize import compile_init, init_variables
from cosnet_jax.models.pretrained import load_pretrained_resnest, read_state_dict
from cosnet_jax.models.refiner import Refiner, build_refiner

__all__ = [
    'PRESETS', 'ModelSpec', 'default_model_config', 'default_refine_config',
    'resolve_model_config', 'COSNet', 'build_cosnet', 'compile_init',
    'init_variables', 'load_pretrained_resnest', 'read_state_dict', 'Refiner',
    'build_refiner',
]
