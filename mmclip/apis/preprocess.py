"""Turning user images into the tensors a model's config expects."""
from typing import List, Sequence, Union

import numpy as np
import torch
from PIL import Image

ImageLike = Union[str, np.ndarray, Image.Image]


def default_clip_pipeline(img_size: int) -> List[dict]:
    """OpenAI's eval preprocessing without normalisation (the model's data
    preprocessor normalises): shortest side to ``img_size`` with PIL bicubic,
    center crop ``img_size`` x ``img_size``, pack.

    Args:
        img_size (int): Target resolution.
    """
    return [
        dict(type='ResizeEdge', scale=img_size, edge='short',
             backend='pillow', interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=img_size),
        dict(type='PackInputs'),
    ]


def _to_bgr_array(image: ImageLike) -> np.ndarray:
    """Load ``image`` as an ``(H, W, 3)`` uint8 BGR array (mmcv's layout),
    with the training loader's decoding (EXIF orientation, CMYK, 16-bit,
    transparency)."""
    from mmclip.datasets.transforms.loading import (decode_image,
                                                    pil_to_rgb_array)
    if isinstance(image, str):
        try:
            with open(image, 'rb') as f:
                image = decode_image(f.read())
        except Exception as err:  # PIL raises several types
            raise ValueError(f'Cannot read image {image!r}: {err}. Check the '
                             'file is a readable image.') from None
    elif isinstance(image, Image.Image):
        image = pil_to_rgb_array(image)
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f'Expected an (H, W, 3) RGB image, got shape '
                         f'{image.shape}.')
    if image.dtype != np.uint8:
        raise ValueError(f'Expected uint8 pixels, got {image.dtype}.')
    return np.ascontiguousarray(image[..., 2::-1])  # RGB(A) -> BGR


def _config_test_pipeline(cfg):
    """A config's evaluation pipeline: ``test_pipeline``, else the test
    dataloader's; None when the config has neither."""
    if cfg is None:
        return None
    if cfg.get('test_pipeline'):
        return list(cfg.test_pipeline)
    try:
        return list(cfg.test_dataloader.dataset.pipeline)
    except AttributeError:
        return None


def preprocess_images(model: torch.nn.Module,
                      images: Sequence[ImageLike]) -> torch.Tensor:
    """Resize, crop and normalise images as the model's config says.

    Uses the config's evaluation pipeline (``test_pipeline``, else
    ``test_dataloader.dataset.pipeline``; file loading steps dropped) when the model carries a config, else
    :func:`default_clip_pipeline` at the image tower's ``img_size``; then the
    model's data preprocessor (OpenAI mean/std, BGR -> RGB).

    Args:
        model (nn.Module): A model built by :func:`mmclip.apis.get_model`.
        images (Sequence[str | np.ndarray | PIL.Image.Image]): File paths,
            RGB ``(H, W, 3)`` uint8 arrays or PIL images.

    Returns:
        Tensor: ``(N, 3, S, S)`` on the model's device.
    """
    from mmclip.registry import TRANSFORMS
    import mmclip.datasets  # noqa: F401 (fills the transform registry)
    cfg = getattr(model, 'cfg', None)
    pipeline = _config_test_pipeline(cfg) or default_clip_pipeline(
        model.backbone.img_size)
    transforms = [
        TRANSFORMS.build(t) for t in pipeline
        if t['type'] not in ('LoadImageFromFile', 'LoadImageFromNDArray')
    ]
    packed = []
    for image in images:
        img = _to_bgr_array(image)
        results = dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        for t in transforms:
            results = t(results)
        packed.append(results)
    batch = dict(
        inputs=[r['inputs'] for r in packed],
        data_samples=[r['data_samples'] for r in packed])
    with torch.no_grad():
        return model.data_preprocessor(batch, False)['inputs']
