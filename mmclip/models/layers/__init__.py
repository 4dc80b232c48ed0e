from .pos_embed import resize_grid_pos_embed
from .transformer import (ResidualAttentionBlock, SelfAttention, Transformer,
                          build_activation)
from .utils import TowerMixin, freeze

__all__ = [
    'ResidualAttentionBlock', 'SelfAttention', 'TowerMixin', 'Transformer',
    'build_activation', 'freeze', 'resize_grid_pos_embed'
]
