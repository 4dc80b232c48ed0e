"""CLIP data pipelines: the default configs, and the one builder that both
datasets and inference (:mod:`mmclip.apis.preprocess`) use.

Training follows OpenAI CLIP / open_clip: a random resized crop covering 90 to
100 % of the image area, bicubic through Pillow; no flip or colour jitter.
Large JPEGs are decoded at a reduced scale whose short side is still at least
twice the crop's (``LoadImageRGB(decode_min_side=...)``).
Evaluation resizes the short side bicubically and takes the centre crop.
Captions are checked and tokenized before the image is decoded, so an empty
caption costs no JPEG decoding. Normalisation is done by the model's data
preprocessor (OpenAI mean/std, BGR -> RGB), not here.

The same lists, written out for ``img_size = 224``::

    train_pipeline = [
        dict(type='SampleCaption'),
        dict(type='TokenizeText'),
        dict(type='LoadImageRGB', decode_min_side=448),
        dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.9, 1.0),
             interpolation='bicubic', backend='pillow'),
        dict(type='PackImageText'),
    ]
    test_pipeline = [
        dict(type='TokenizeText'),
        dict(type='LoadImageRGB'),
        dict(type='ResizeEdge', scale=224, edge='short',
             interpolation='bicubic', backend='pillow'),
        dict(type='CenterCrop', crop_size=224),
        dict(type='PackImageText'),
    ]
"""
from typing import Callable, List, Optional, Sequence, Union

from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from mmpretrain.datasets.transforms import remove_transform

from mmclip.registry import TRANSFORMS

#: Steps that read an image file; inference hands over decoded images.
LOADING_TRANSFORMS = ('LoadImageFromFile', 'LoadImageRGB')
#: Steps on captions; images alone have none (retrieval pipelines tokenize
#: every caption of an image).
TEXT_TRANSFORMS = ('SampleCaption', 'TokenizeText')


def clip_train_pipeline(img_size: int = 224,
                        crop_ratio_range=(0.9, 1.0),
                        context_length: int = 77) -> List[dict]:
    """CLIP training pipeline configs.

    Args:
        img_size (int): Output side length. Defaults to 224.
        crop_ratio_range (tuple): Area fraction range of the random crop.
            Defaults to ``(0.9, 1.0)`` (open_clip's ``scale``).
        context_length (int): Tokens per caption. Defaults to 77.

    Returns:
        List[dict]: Transform configs; works for every mmclip image-text
        dataset (``SampleCaption`` passes a single caption through).
    """
    return [
        dict(type='SampleCaption'),
        dict(type='TokenizeText', context_length=context_length),
        dict(type='LoadImageRGB', decode_min_side=2 * img_size),
        dict(
            type='RandomResizedCrop',
            scale=img_size,
            crop_ratio_range=tuple(crop_ratio_range),
            interpolation='bicubic',
            backend='pillow'),
        dict(type='PackImageText'),
    ]


def clip_test_pipeline(img_size: int = 224,
                       context_length: int = 77,
                       with_text: bool = True) -> List[dict]:
    """CLIP evaluation pipeline configs.

    Args:
        img_size (int): Short-side length and crop size. Defaults to 224.
        context_length (int): Tokens per caption. Defaults to 77.
        with_text (bool): Tokenize the caption(s) (retrieval). False gives an
            image-only pipeline for zero-shot classification datasets.
            Defaults to True.

    Returns:
        List[dict]: Transform configs.
    """
    text = [dict(type='TokenizeText', context_length=context_length)
            ] if with_text else []
    return text + [
        dict(type='LoadImageRGB'),
        dict(
            type='ResizeEdge',
            scale=img_size,
            edge='short',
            interpolation='bicubic',
            backend='pillow'),
        dict(type='CenterCrop', crop_size=img_size),
        dict(type='PackImageText'),
    ]


def config_test_pipeline(cfg) -> Optional[List[dict]]:
    """A config's evaluation pipeline, as transform configs.

    Args:
        cfg (Config, optional): A full config, e.g. the ``cfg`` of a model
            from :func:`mmclip.apis.get_model`.

    Returns:
        list[dict] | None: ``cfg.test_pipeline`` if set, else the test
        dataloader's dataset pipeline; None when ``cfg`` is None or has
        neither.
    """
    if cfg is None:
        return None
    if cfg.get('test_pipeline'):
        return list(cfg.test_pipeline)
    try:
        return list(cfg.test_dataloader.dataset.pipeline)
    except AttributeError:
        return None


def build_pipeline(pipeline: Sequence[Union[dict, Callable]],
                   images_only: bool = False,
                   decoded: bool = False) -> Compose:
    """Build transform configs with mmclip's registry, whatever the
    caller's default scope.

    mmclip's own transforms (``LoadImageRGB``, ``PackImageText``, ...) are
    found even where another default scope is active (``mmpretrain``, as in
    :func:`mmpretrain.get_model`), and mmpretrain's (``ResizeEdge``,
    ``PackInputs``, ...) through the parent registry.

    Args:
        pipeline (Sequence[dict | callable]): Transform configs or objects.
        images_only (bool): Drop the caption steps
            (:data:`TEXT_TRANSFORMS`), to run any test pipeline, a retrieval
            one included, on images alone. Defaults to False.
        decoded (bool): Drop the file-reading steps
            (:data:`LOADING_TRANSFORMS`): the results dict arrives with
            ``img`` already decoded. Defaults to False.

    Returns:
        Compose: The composed pipeline.
    """
    dropped = (TEXT_TRANSFORMS if images_only else ()) + (
        LOADING_TRANSFORMS if decoded else ())
    pipeline = list(pipeline)
    for name in dropped:
        pipeline = remove_transform(pipeline, name)
    with DefaultScope.overwrite_default_scope('mmclip'):
        return Compose([
            TRANSFORMS.build(t) if isinstance(t, dict) else t
            for t in pipeline
        ])
