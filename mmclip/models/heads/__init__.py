from .contrastive_head import CLIPContrastiveHead
from .siglip_head import SigLIPHead, sigmoid_loss

__all__ = ['CLIPContrastiveHead', 'SigLIPHead', 'sigmoid_loss']
