"""Global pixel contrastive learning: memory bank, Otsu, anchor sampling,
pixel contrastive and segmentation losses (see docs/design.md, "contrast")."""
from cosnet_jax.contrast.branch import branch_labels, contrast_branch_loss
from cosnet_jax.contrast.config import check_contrast_config
from cosnet_jax.contrast.losses import (combine_losses, pixel_contrast_loss,
                                        segmentation_loss)
from cosnet_jax.contrast.memory_bank import (EnqueueItems, MemoryBank,
                                             bank_contrast_set, enqueue,
                                             init_memory_bank,
                                             init_memory_bank_from_config,
                                             l2_normalize, select_for_enqueue,
                                             update_memory_bank)
from cosnet_jax.contrast.otsu import otsu_threshold
from cosnet_jax.contrast.sampling import (Anchors, compact_anchors,
                                          count_kept_classes, sample_anchors)

__all__ = [
    'Anchors', 'EnqueueItems', 'MemoryBank', 'bank_contrast_set',
    'branch_labels', 'check_contrast_config', 'combine_losses', 'compact_anchors',
    'contrast_branch_loss', 'count_kept_classes',
    'enqueue', 'init_memory_bank', 'init_memory_bank_from_config',
    'l2_normalize', 'otsu_threshold', 'pixel_contrast_loss', 'sample_anchors',
    'segmentation_loss', 'select_for_enqueue', 'update_memory_bank',
]
