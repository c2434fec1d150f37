"""COSNet models: ResNeSt encoder, two-branch decoder, heads, refinement, converter."""
from cosnet_jax.models.config import ModelSpec, resolve_model_config
from cosnet_jax.models.cosnet import COSNet, build_cosnet, frozen_maps
from cosnet_jax.models.formulation import CPU, REFERENCE, Formulation
from cosnet_jax.models.initialize import compile_init, init_variables
from cosnet_jax.models.pretrained import load_pretrained_resnest, read_state_dict
from cosnet_jax.models.refiner import Refiner, build_refiner

__all__ = [
    'ModelSpec', 'resolve_model_config', 'COSNet', 'build_cosnet', 'frozen_maps',
    'CPU', 'REFERENCE', 'Formulation', 'compile_init', 'init_variables',
    'load_pretrained_resnest', 'read_state_dict', 'Refiner', 'build_refiner',
]
