"""Linear classification head on L2-normalised CLIP image embeddings."""
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from mmpretrain.models.heads import LinearClsHead

from mmclip.deprecation import renamed_argument
from mmclip.registry import MODELS
from ..utils.zero_shot import SCALE_RENAMED


@MODELS.register_module()
class CLIPClsHead(LinearClsHead):
    """mmpretrain's ``LinearClsHead`` that can be CLIP's zero-shot classifier.

    CLIP's zero-shot logits are ``scale * normalize(img) @ W`` with
    unit-norm class columns ``W`` (``D x C``, see
    :func:`~mmclip.models.utils.build_zero_shot_classifier`). With
    ``normalize=True`` this head computes ``fc(normalize(img))``, so
    ``fc.weight = scale * W.T`` and ``fc.bias = 0``
    (:meth:`init_from_zero_shot`) give exactly the zero-shot logits. The
    temperature is folded into the weights, as WiSE-FT's classification head
    does: fine-tuning, weight decay and weight interpolation treat it like
    any other weight, and the head stays a plain linear layer that
    mmpretrain's losses (``LabelSmoothLoss``, soft Mixup/CutMix targets),
    ``Accuracy`` and inferencers use unchanged.

    Checkpoint names are ``LinearClsHead``'s (``head.fc.weight``,
    ``head.fc.bias``).

    Args:
        num_classes (int): Number of classes ``C``.
        in_channels (int): Embedding dim ``D`` (the image tower's
            ``out_channels``, 512 for ViT-B).
        normalize (bool): L2-normalise the embedding before ``fc``. False
            makes this ``LinearClsHead`` (e.g. on a pooled, unprojected
            feature). Defaults to True.
        **kwargs: ``loss``, ``topk``, ``cal_acc``, ``init_cfg`` of
            :class:`~mmpretrain.models.heads.LinearClsHead`.

    Shapes:
        - input: a tuple whose last element is ``(B, in_channels)``.
        - output: logits ``(B, num_classes)``.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 normalize: bool = True,
                 **kwargs):
        super().__init__(num_classes=num_classes, in_channels=in_channels,
                         **kwargs)
        self.normalize = normalize

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """The last stage's feature, L2-normalised if ``normalize``."""
        feat = feats[-1]
        return F.normalize(feat, dim=-1) if self.normalize else feat

    @torch.no_grad()
    def init_from_zero_shot(
            self,
            weights: torch.Tensor,
            scale: Union[float, torch.Tensor, None] = None,
            logit_scale: Union[float, torch.Tensor, None] = None) -> None:
        """Make this head CLIP's zero-shot classifier.

        Args:
            weights (Tensor): ``(D, C)`` zero-shot classifier (normalised
                class embeddings), as ``ZeroShotClsHead.get_classifier``
                returns.
            scale (float | Tensor): The multiplier of the similarities: 100
                for OpenAI's weights, or a CLIP model's
                ``logit_scale.exp()`` (see :func:`resolve_scale
                <mmclip.models.utils.resolve_scale>`).
            logit_scale (float | Tensor, optional): Deprecated name of
                ``scale`` (warns). Defaults to None.

        Raises:
            ValueError: ``weights`` is not ``(in_channels, num_classes)``,
                or the head does not normalise its input.
        """
        if not self.normalize:
            raise ValueError(
                'CLIPClsHead(normalize=False) cannot hold a zero-shot '
                'classifier: CLIP scores normalised embeddings. Set '
                'normalize=True.')
        expected = (self.in_channels, self.num_classes)
        if tuple(weights.shape) != expected:
            raise ValueError(
                f'The zero-shot classifier is {tuple(weights.shape)} '
                '(embedding dim x classes) but the head expects '
                f'{expected}: set the head\'s in_channels to the CLIP '
                'embedding dim and num_classes to the number of class names.')
        scale = renamed_argument('CLIPClsHead.init_from_zero_shot',
                                 'logit_scale', logit_scale, 'scale', scale,
                                 SCALE_RENAMED)
        if scale is None:
            raise TypeError('init_from_zero_shot() needs scale, the '
                            'multiplier of the similarities.')
        scale = torch.as_tensor(scale, dtype=torch.float32)
        self.fc.weight.copy_((scale * weights.float()).t())
        self.fc.bias.zero_()
