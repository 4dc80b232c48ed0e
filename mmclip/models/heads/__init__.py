from .clip_cls_head import CLIPClsHead
from .contrastive_head import CLIPContrastiveHead
from .pair_loss_head import PairLossHead
from .retrieval_head import ImageTextRetrievalHead
from .siglip_head import SigLIPHead, sigmoid_loss
from .zero_shot_head import ZeroShotClsHead

__all__ = [
    'CLIPClsHead', 'CLIPContrastiveHead', 'PairLossHead', 'SigLIPHead',
    'sigmoid_loss', 'ImageTextRetrievalHead', 'ZeroShotClsHead'
]
