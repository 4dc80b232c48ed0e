"""CLIP's symmetric InfoNCE loss, exact under data-parallel training."""
import warnings
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from torch import Tensor

from mmclip.registry import MODELS
from ..utils.dist import check_batch_sizes, gather_features, top1_accuracy
from .pair_loss_head import PairLossHead, check_pairs


@MODELS.register_module()
class CLIPContrastiveHead(PairLossHead):
    """Symmetric InfoNCE loss of CLIP (Radford et al. 2021).

    ``logits = exp(logit_scale) * img @ txt.T``; the loss is the mean of the
    image->text and text->image cross-entropies with the matching pair as
    target. (Registered as ``CLIPContrastiveHead``: mmpretrain already owns
    ``ContrastiveHead``, its MoCo/SimCLR head.)

    **Data-parallel training.** When ``torch.distributed`` is initialised
    with more than one rank, every rank gathers the features of the global
    batch, so each pair is contrasted against all ``world_size * B`` samples
    as in single-process training on the concatenated batch. All ranks must
    have the same local batch size ``B`` (mmengine's ``DefaultSampler`` and
    ``InfiniteSampler`` pad so that they do; a mismatch raises
    ``ValueError``). With DDP, which *averages* gradients over ranks, the
    four combinations of the two flags behave as follows (``L`` = loss of
    one process on the global batch; measured by
    ``tests/test_models/test_heads/test_heads_distributed.py``):

    - ``local_loss=True, gather_with_grad=True`` (default; open_clip's
      ``--local-loss --gather-with-grad``): each rank computes the loss of
      its ``B`` rows against all ``world_size * B`` columns. The mean of the
      rank losses is ``L`` and the gather's backward returns to each rank the
      gradients its features receive from every rank's loss, so the averaged
      gradients equal those of ``L``. Logits cost ``B x world_size * B``:
      the only combination that scales.
    - ``local_loss=False, gather_with_grad=True``: every rank computes ``L``
      on the full ``world_size * B`` square. The gather's backward sums the
      ``world_size`` identical contributions, which is the factor open_clip
      issue #616 observed against the no-grad gather; after DDP averaging
      the gradients equal those of ``L``. Correct, but ``world_size`` times
      the logits' compute and memory.
    - ``local_loss=False, gather_with_grad=False`` (open_clip's default):
      as above, but only the local slice of the gathered features carries a
      gradient. The tower gradients are ``1 / world_size`` of ``L``'s while
      ``logit_scale``'s is exact; Adam-type optimisers mostly hide the
      common scale, SGD does not.
    - ``local_loss=True, gather_with_grad=False``: a rank's features get no
      gradient from the other ranks' losses, so terms are missing (not a
      scale): wrong gradients. Kept only to reproduce open_clip runs; a
      warning is raised (see open_clip issue #894: use local loss together
      with gather-with-grad).

    Args:
        local_loss (bool): Compute the loss of the local rows only against
            the global batch, instead of the full global square on every
            rank. Defaults to True.
        gather_with_grad (bool): Gather the features of other ranks with
            autograd (``torch.distributed.nn.all_gather``) instead of as
            constants. Defaults to True.
        loss_weight (float): Factor applied to the loss. Defaults to 1.0.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 local_loss: bool = True,
                 gather_with_grad: bool = True,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(loss_weight=loss_weight, init_cfg=init_cfg)
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        if local_loss and not gather_with_grad:
            warnings.warn(
                'CLIPContrastiveHead(local_loss=True, gather_with_grad=False) '
                'gives wrong gradients with more than one process; use '
                'gather_with_grad=True.')
        # {(device, B, offset): labels}; the labels depend only on these.
        self._labels: Dict[Tuple[torch.device, int, int], Tensor] = {}

    def _get_labels(self, device: torch.device, num: int,
                    offset: int) -> Tensor:
        key = (device, num, offset)
        if key not in self._labels:
            self._labels[key] = torch.arange(
                offset, offset + num, device=device, dtype=torch.long)
        return self._labels[key]

    def get_logits(self, img_feats: Tensor, txt_feats: Tensor,
                   logit_scale: Tensor) -> Tuple[Tensor, Tensor, int]:
        """Image->text and text->image logits of this rank.

        Args:
            img_feats (Tensor): L2-normalised local image embeddings
                ``(B, D)``.
            txt_feats (Tensor): L2-normalised local text embeddings
                ``(B, D)``.
            logit_scale (Tensor): Scalar log temperature.

        Returns:
            tuple[Tensor, Tensor, int]: ``logits_per_image`` and
            ``logits_per_text``, each ``(M, N)``, and the column of row 0's
            pair. Single process: ``M = N = B``, offset 0. Distributed:
            ``N = world_size * B``; with ``local_loss`` ``M = B`` and offset
            ``rank * B``, else ``M = N`` and offset 0.
        """
        check_pairs(img_feats, txt_feats)
        scale = logit_scale.exp()
        rank, world_size = get_dist_info()
        if world_size == 1:
            logits_per_image = scale * img_feats @ txt_feats.T
            return logits_per_image, logits_per_image.T, 0
        check_batch_sizes(img_feats)
        all_img, all_txt = gather_features(img_feats, txt_feats,
                                           self.gather_with_grad)
        if self.local_loss:
            return (scale * img_feats @ all_txt.T,
                    scale * txt_feats @ all_img.T, rank * img_feats.shape[0])
        logits_per_image = scale * all_img @ all_txt.T
        return logits_per_image, logits_per_image.T, 0

    def pair_loss(self, img_feats: Tensor, txt_feats: Tensor,
                  logit_scale: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The symmetric cross-entropy, and ``i2t_acc`` / ``t2i_acc`` of the
        local rows against the global batch (see :meth:`loss`)."""
        logits_per_image, logits_per_text, offset = self.get_logits(
            img_feats, txt_feats, logit_scale)
        labels = self._get_labels(logits_per_image.device,
                                  logits_per_image.shape[0], offset)
        loss = (F.cross_entropy(logits_per_image, labels) +
                F.cross_entropy(logits_per_text, labels)) / 2

        # Metrics over the local rows only, whatever the loss covers.
        num = img_feats.shape[0]
        rows = slice(None)
        if logits_per_image.shape[0] != num:  # the global square
            rank = get_dist_info()[0]
            rows, offset = slice(rank * num, (rank + 1) * num), rank * num
        return loss, dict(
            i2t_acc=top1_accuracy(logits_per_image[rows].detach(), offset),
            t2i_acc=top1_accuracy(logits_per_text[rows].detach(), offset))
