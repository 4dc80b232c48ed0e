"""What CLIP's training heads share: a loss over a batch of matching
image-text pairs, and the metrics logged with it."""
from typing import Dict, Optional, Tuple

from mmengine.model import BaseModule
from torch import Tensor


def check_pairs(img_feats: Tensor, txt_feats: Tensor) -> None:
    """Refuse embeddings that are not one ``(B, D)`` batch of pairs."""
    if img_feats.shape != txt_feats.shape:
        raise ValueError('img_feats and txt_feats must both be (B, D), '
                         f'got {tuple(img_feats.shape)} and '
                         f'{tuple(txt_feats.shape)}.')


class PairLossHead(BaseModule):
    """Base of :class:`CLIPModel`'s training heads (``mode='loss'``).

    :meth:`loss` checks the pairs, calls the subclass's :meth:`pair_loss`,
    applies ``loss_weight`` and logs the temperature.

    Args:
        loss_weight (float): Factor applied to the loss. Defaults to 1.0.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.loss_weight = loss_weight

    def loss(self, img_feats: Tensor, txt_feats: Tensor,
             logit_scale: Tensor) -> Dict[str, Tensor]:
        """Loss and retrieval metrics of a batch of pairs.

        Args:
            img_feats (Tensor): L2-normalised local image embeddings
                ``(B, D)``; row ``i`` pairs with ``txt_feats[i]``.
            txt_feats (Tensor): L2-normalised local text embeddings
                ``(B, D)``.
            logit_scale (Tensor): Scalar log temperature (the model's
                learnable parameter; logits use its exponential).

        Returns:
            dict[str, Tensor]: ``loss`` (scalar, with graph; ``loss_weight``
            applied) and, detached, ``temperature`` (``exp(logit_scale)``)
            and the metrics of :meth:`pair_loss`.
        """
        check_pairs(img_feats, txt_feats)
        loss, metrics = self.pair_loss(img_feats, txt_feats, logit_scale)
        return dict(
            loss=loss * self.loss_weight,
            temperature=logit_scale.detach().exp(),
            **metrics)

    def pair_loss(self, img_feats: Tensor, txt_feats: Tensor,
                  logit_scale: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The unweighted loss (with graph) and detached metrics, at least
        ``i2t_acc`` and ``t2i_acc`` (top-1 in-batch retrieval accuracy in %
        of the local rows). Arguments as :meth:`loss`'s, already checked."""
        raise NotImplementedError
