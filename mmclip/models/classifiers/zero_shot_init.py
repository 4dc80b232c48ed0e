"""Start an image classifier as a CLIP checkpoint's zero-shot classifier."""
import copy
from typing import Optional, Sequence, Union

import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model.weight_init import update_init_info

from mmclip.deprecation import renamed_argument
from mmclip.registry import MODELS, WEIGHT_INITIALIZERS
from ..heads.zero_shot_head import DEFAULT_CACHE_DIR, ZeroShotClsHead
from ..pretrained import load_pretrained
from ..utils.zero_shot import SCALE_RENAMED, Scale, resolve_scale

# CLIPModel parts that play no role in making the classifier.
_UNUSED_CLIP_PARTS = ('head', 'predict_head', 'init_cfg')


@WEIGHT_INITIALIZERS.register_module()
class ZeroShotInit:
    """Initialise an mmpretrain ``ImageClassifier`` from a CLIP checkpoint so
    that, before any training step, its logits are the zero-shot head's.

    Used as the classifier's ``init_cfg`` (mmengine runs it in
    ``model.init_weights()``, which ``tools/train.py`` calls before the first
    step)::

        model = dict(
            type='ImageClassifier',
            backbone=dict(type='CLIPVisionTransformer', ...),  # as in `clip`
            head=dict(type='CLIPClsHead', num_classes=1000, in_channels=512),
            init_cfg=dict(
                type='ZeroShotInit',
                checkpoint='checkpoints/vit-b-16_openai.pth',
                clip=<the CLIPModel config of the checkpoint>,
                classnames='imagenet', templates='openai_imagenet'))

    It

    1. builds the CLIP model ``clip`` and loads ``checkpoint`` into it with
       :func:`~mmclip.models.utils.load_pretrained` (plain data only; a
       checkpoint that does not fit the config is one error naming the
       keys);
    2. loads that image tower into ``classifier.backbone``. Both are
       :class:`~mmclip.models.CLIPVisionTransformer`, so the names are the
       same (a CLIP checkpoint's ``backbone.*`` are the classifier's
       ``backbone.*``); a 224px position grid is resized bicubically for a
       384px backbone on load;
    3. builds the zero-shot classifier (class names x templates) with the
       text tower through :meth:`ZeroShotClsHead.get_classifier`: the same
       prompt ensemble, disk cache (shared with zero-shot evaluation of the
       same checkpoint) and split over ranks as zero-shot evaluation;
    4. writes it into the head (:meth:`CLIPClsHead.init_from_zero_shot`)
       and drops the CLIP model, text tower included.

    mmengine runs a module's own ``init_cfg`` before its children's, so the
    backbone and head are then marked initialised (``is_init``): their own
    ``init_cfg`` (``LinearClsHead``'s ``Normal``) must not overwrite them.

    To start from a CLIP image tower with a *randomly* initialised head
    instead, give the backbone mmengine's
    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.

    Args:
        checkpoint (str): A CLIP checkpoint: converted OpenAI / open_clip
            weights (``tools/model_converters/clip_to_mmclip.py``) or an
            mmclip pretraining run's ``epoch_N.pth``.
        clip (dict): Config of the CLIP model the checkpoint holds, e.g.
            ``_base_.model`` of ``configs/_base_/models/clip_vit-base-p16.py``;
            its ``head``, ``predict_head`` and ``init_cfg`` are not built.
        classnames (str | list[str]): One per classifier output, as
            :class:`ZeroShotClsHead`'s (``'imagenet'``, a list, a ``.txt``).
        templates (str | list[str]): Prompt templates, as
            :class:`ZeroShotClsHead`'s. Defaults to ``'openai_imagenet'``.
        scale (float | str): Multiplier folded into the head's weights: a
            number (100 for OpenAI's weights) or ``'learned'`` (the
            checkpoint's ``logit_scale.exp()``). Defaults to 100.
        cache_dir (str, optional): Zero-shot classifier disk cache; None
            disables it. Defaults to ``~/.cache/mmclip/zero_shot``.
        batch_size (int): Prompts per text-tower call. Defaults to 256.
        logit_scale (float | str, optional): Deprecated name of ``scale``
            (warns). Defaults to None.
    """

    def __init__(self,
                 checkpoint: str,
                 clip: dict,
                 classnames: Union[str, Sequence[str]],
                 templates: Union[str, Sequence[str]] = 'openai_imagenet',
                 scale: Scale = 100.,
                 cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
                 batch_size: int = 256,
                 logit_scale: Optional[Scale] = None):
        if not isinstance(clip, dict) or 'text_encoder' not in clip:
            raise ValueError(
                'ZeroShotInit needs clip=<the CLIPModel config of the '
                "checkpoint> (with its text_encoder), e.g. _base_.model of "
                "configs/_base_/models/clip_vit-base-p16.py.")
        self.checkpoint = checkpoint
        self.clip_cfg = {
            k: v for k, v in copy.deepcopy(dict(clip)).items()
            if k not in _UNUSED_CLIP_PARTS
        }
        # The zero-shot head resolves the names and checks scale; its
        # get_classifier is the one zero-shot evaluation uses.
        self.zero_shot = ZeroShotClsHead(
            classnames, templates,
            scale=renamed_argument(type(self).__name__, 'logit_scale',
                                   logit_scale, 'scale', scale,
                                   SCALE_RENAMED),
            cache_dir=cache_dir, batch_size=batch_size)
        self.wholemodule = False  # set by mmengine's initialize()

    def _check_classifier(self, classifier: nn.Module) -> None:
        for part in ('backbone', 'head'):
            if getattr(classifier, part, None) is None:
                raise TypeError(
                    f'ZeroShotInit initialises an ImageClassifier (backbone '
                    f'+ CLIPClsHead); {type(classifier).__name__} has no '
                    f'{part}. Put it in the classifier\'s init_cfg.')
        if not hasattr(classifier.head, 'init_from_zero_shot'):
            raise TypeError(
                f'The head is a {type(classifier.head).__name__}; a '
                "zero-shot initialised head is dict(type='CLIPClsHead', "
                'num_classes=..., in_channels=<embedding dim>).')

    def __call__(self, classifier: nn.Module) -> None:
        self._check_classifier(classifier)
        clip = MODELS.build(copy.deepcopy(self.clip_cfg))
        load_pretrained(clip, self.checkpoint, model_cfg=self.clip_cfg)
        # Image tower: the same module type, so the same names.
        classifier.backbone.load_state_dict(clip.backbone.state_dict())

        device = next(classifier.head.parameters()).device
        clip.to(device).eval()
        weights = self.zero_shot.get_classifier(clip.text_embedder())
        scale = resolve_scale(self.zero_shot.scale, clip.logit_scale)
        classifier.head.init_from_zero_shot(weights.to(device), scale)
        classifier.backbone.is_init = classifier.head.is_init = True
        MMLogger.get_current_instance().info(
            f'{self._get_init_info()}: image tower and a zero-shot head of '
            f'{self.zero_shot.num_classes} classes x '
            f'{len(self.zero_shot.templates)} templates, scale '
            f'{float(scale):.4g}.')
        if hasattr(classifier, '_params_init_info'):
            update_init_info(classifier, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f'{type(self).__name__} from {self.checkpoint}'
