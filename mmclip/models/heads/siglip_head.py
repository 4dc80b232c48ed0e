"""SigLIP's pairwise sigmoid loss, exact under data-parallel training."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from torch import Tensor

from mmclip.registry import MODELS
from ..utils.dist import (all_gather_no_grad, all_gather_with_grad,
                          check_batch_sizes, neighbour_exchange,
                          neighbour_exchange_bidir, top1_accuracy)
from .pair_loss_head import PairLossHead


def sigmoid_loss(logits: Tensor, pos_offset: Optional[int] = None) -> Tensor:
    """``-sum(logsigmoid(labels * logits)) / M`` of an ``(M, N)`` block.

    ``labels`` is +1 at ``(i, pos_offset + i)`` (the matching pairs) and -1
    elsewhere; ``pos_offset=None`` makes the whole block negatives. The sign
    is applied with a boolean mask instead of a float label matrix.

    Args:
        logits (Tensor): ``(M, N)`` logits of ``M`` local images.
        pos_offset (int, optional): Column of image 0's text. Defaults to
            None.

    Returns:
        Tensor: Scalar loss, normalised by the number of local images.
    """
    if pos_offset is None:
        signed = -logits
    else:
        rows = torch.arange(logits.shape[0], device=logits.device)
        cols = torch.arange(logits.shape[1], device=logits.device)
        is_pos = cols[None, :] == (rows + pos_offset)[:, None]
        signed = torch.where(is_pos, logits, -logits)
    return -F.logsigmoid(signed).sum() / logits.shape[0]


@MODELS.register_module()
class SigLIPHead(PairLossHead):
    """Sigmoid loss for language-image pre-training (SigLIP).

    Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training"
    (arXiv 2303.15343). Every image-text pair of the batch is an independent
    binary problem: ``logits = exp(logit_scale) * img @ txt.T + logit_bias``,
    label +1 for matching pairs and -1 otherwise, and
    ``loss = -sum(logsigmoid(labels * logits)) / B`` (summed over pairs,
    divided by the number of images, as in the paper and open_clip's
    ``SigLipLoss``). ``logit_bias`` is a learnable parameter of this head;
    the temperature is the model's ``logit_scale``, which SigLIP configs
    should initialise to ``ln(10)`` (with ``init_logit_bias=-10``, the
    paper's choice; CLIP's ``ln(1 / 0.07)`` is not).

    **Data-parallel training.** Each rank computes its ``B`` local images
    against the texts of every rank (positives only with its own texts) and
    divides by ``B``. The mean of the rank losses then equals the loss of one
    process on the concatenated batch (``sum over W*B x W*B pairs / (W*B)``),
    and since the texts travel with autograd, the DDP-averaged gradients
    equal that process's gradients: no rescaling is needed. All ranks must
    have the same local batch size ``B`` (mmengine's samplers pad so that
    they do; a mismatch raises ``ValueError``). The texts travel either by:

    - ``'gather'``: one ``all_gather`` with autograd; logits
      ``B x world_size * B``.
    - ``'neighbour_exchange'``: open_clip's bidirectional ring, sending text
      blocks to both neighbours with point-to-point ops (``world_size - 1``
      blocks in ``ceil((world_size - 1) / 2)`` rounds); logits are only
      ever ``B x B`` per block, for large world sizes.

    **Logged accuracies.** ``i2t_acc`` / ``t2i_acc`` are top-1 in-batch
    retrieval accuracies of the local rows, for monitoring only (no
    gradient). With one process, or ``'gather'``, the candidates are the
    global batch (``world_size * B`` texts / images; the images are gathered
    without gradient for ``t2i_acc``). With ``'neighbour_exchange'`` they are
    the rank's own ``B`` pairs: an easier task than the global batch, so the
    numbers are higher than ``'gather'`` gives for the same model and
    comparable only between runs with the same ``B``. Measuring them against
    the global batch would need the all-gather of both feature sets that
    this mode exists to avoid (the ring never moves images).

    Args:
        init_logit_bias (float): Initial ``logit_bias``. Defaults to -10.0.
        loss_weight (float): Factor applied to the loss. Defaults to 1.0.
        dist_impl (str): ``'gather'`` or ``'neighbour_exchange'``; only
            used with more than one process. Defaults to ``'gather'``.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """
    DIST_IMPLS = ('gather', 'neighbour_exchange')

    def __init__(self,
                 init_logit_bias: float = -10.0,
                 loss_weight: float = 1.0,
                 dist_impl: str = 'gather',
                 init_cfg: Optional[dict] = None):
        super().__init__(loss_weight=loss_weight, init_cfg=init_cfg)
        if dist_impl not in self.DIST_IMPLS:
            raise ValueError(f'dist_impl must be one of {self.DIST_IMPLS}, '
                             f'got {dist_impl!r}.')
        self.logit_bias = nn.Parameter(torch.tensor(float(init_logit_bias)))
        self.dist_impl = dist_impl

    def _logits(self, img_feats: Tensor, txt_feats: Tensor,
                scale: Tensor) -> Tensor:
        return scale * img_feats @ txt_feats.T + self.logit_bias

    def _ring_loss(self, img_feats: Tensor, txt_feats: Tensor, scale: Tensor,
                   world_size: int) -> Tensor:
        """Own block, then the other ranks' text blocks around the ring."""
        loss = sigmoid_loss(self._logits(img_feats, txt_feats, scale), 0)
        # Each bidirectional round fetches the blocks one step further away
        # on both sides; an odd remainder is fetched from the left alone.
        num_bidir, remainder = divmod(world_size - 1, 2)
        to_left = to_right = txt_feats
        for _ in range(num_bidir):
            from_left, from_right = neighbour_exchange_bidir(
                to_left, to_right)
            for block in (from_left, from_right):
                loss = loss + sigmoid_loss(
                    self._logits(img_feats, block, scale))
            # Pass on what arrived, away from where it came from.
            to_left, to_right = from_right, from_left
        if remainder:
            block = neighbour_exchange(to_right)
            loss = loss + sigmoid_loss(self._logits(img_feats, block, scale))
        return loss

    def pair_loss(self, img_feats: Tensor, txt_feats: Tensor,
                  logit_scale: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The sigmoid loss, and ``logit_bias``, ``i2t_acc`` and
        ``t2i_acc`` of the local rows (against the global batch, or the
        local one with ``'neighbour_exchange'``; see the class docstring).
        """
        scale = logit_scale.exp()
        rank, world_size = get_dist_info()
        check_batch_sizes(img_feats)
        if world_size > 1 and self.dist_impl == 'gather':
            offset = rank * img_feats.shape[0]
            all_txt = all_gather_with_grad(txt_feats)
            loss = sigmoid_loss(
                self._logits(img_feats, all_txt, scale), offset)
            # The metrics' image candidates, gathered as constants.
            all_img = all_gather_no_grad(img_feats, keep_local_grad=False)
        else:
            # The ring (with one process: the own block only); the metrics
            # stay within the local pairs, so nothing is gathered.
            loss = self._ring_loss(img_feats, txt_feats, scale, world_size)
            offset, all_txt, all_img = 0, txt_feats, img_feats

        with torch.no_grad():
            i2t_acc = top1_accuracy(img_feats @ all_txt.T, offset)
            t2i_acc = top1_accuracy(txt_feats @ all_img.T, offset)
        return loss, dict(
            logit_bias=self.logit_bias.detach().clone(),
            i2t_acc=i2t_acc,
            t2i_acc=t2i_acc)
