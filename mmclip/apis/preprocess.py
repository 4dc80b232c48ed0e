"""Turning user images into the tensors a model's config expects."""
import os
from typing import Callable, List, Sequence, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

ImageLike = Union[str, os.PathLike, bytes, np.ndarray, Image.Image]


# Images above this many pixels are refused (1.5 GB of RGB at the limit);
# Pillow alone refuses above 179 MP and warns above 89 MP.
MAX_PIXELS = 2**29
# JPEGs above this many pixels are decoded at a reduced DCT scale that keeps
# the short side >= 2048 px (see decode_image); smaller ones decode exactly
# as every other CLIP implementation does.
DRAFT_PIXELS = 2**26


def _decode(data: bytes, what: str, subject: str,
            max_pixels: int) -> np.ndarray:
    """:func:`~mmclip.datasets.transforms.loading.decode_image` with its
    failures as one ``ValueError`` naming ``what`` (e.g. the file)."""
    from mmclip.datasets.transforms.loading import decode_image
    if not data:
        raise ValueError(f'Cannot read {what}: {subject} is empty (0 bytes).')
    try:
        return decode_image(data, max_pixels=max_pixels,
                            draft_pixels=DRAFT_PIXELS)
    except UnidentifiedImageError:
        raise ValueError(
            f'Cannot read {what}: not a readable image format (a text or '
            'HTML file? an unsupported format?).') from None
    except Exception as err:  # PIL raises many types for broken files
        raise ValueError(f'Cannot read {what}: {err}. Check that {subject} '
                         'holds a complete, readable image.') from None


def load_image(image: ImageLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load one image as an ``(H, W, 3)`` uint8 RGB array.

    Files are decoded like the training loader does
    (:func:`mmclip.datasets.transforms.loading.decode_image`): EXIF
    orientation applied, grey/palette/CMYK converted, 16-bit scaled to 8-bit,
    transparency composited over white. JPEGs above 67 MP are decoded at a
    reduced scale (short side still >= 2048 px) to bound memory.

    Args:
        image (str | Path | bytes | np.ndarray | PIL.Image.Image): A file
            path, an encoded file's bytes (JPEG, PNG, ...), an RGB
            ``(H, W, 3)`` / RGBA ``(H, W, 4)`` / grey ``(H, W)`` uint8 array
            (RGB order, as PIL, scikit-image and matplotlib give), or a PIL
            image.
        max_pixels (int): Larger images are refused. Defaults to
            :data:`MAX_PIXELS` (537 MP).

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8, RGB.

    Raises:
        ValueError: Naming the file (or the array's shape/dtype) and why it
            cannot be used.
    """
    from mmclip.datasets.transforms.loading import pil_to_rgb_array
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except FileNotFoundError:
            raise ValueError(f'Image file {path!r} does not exist.') from None
        except IsADirectoryError:
            raise ValueError(f'{path!r} is a folder: pass it alone to read '
                             'every image in it.') from None
        return _decode(data, f'image {path!r}', 'the file', max_pixels)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode(bytes(image), 'the image bytes', 'the data',
                       max_pixels)
    if isinstance(image, Image.Image):
        return pil_to_rgb_array(image)
    if not isinstance(image, np.ndarray):
        raise ValueError(f'Expected an image path or bytes, a PIL image or a '
                         f'numpy array, got {type(image).__name__}.')
    if image.dtype != np.uint8:
        raise ValueError(f'Expected a uint8 image array, got {image.dtype}; '
                         'convert with e.g. (img * 255).round().astype('
                         "'uint8') for floats in [0, 1].")
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f'Expected an (H, W, 3) RGB image array, got shape '
                         f'{image.shape}.')
    if image.shape[2] == 4:
        return pil_to_rgb_array(Image.fromarray(image, 'RGBA'))
    return image


def build_eval_transform(model: torch.nn.Module
                         ) -> Callable[[ImageLike], dict]:
    """The per-image half of :func:`preprocess_images`: a function that
    loads one image (:func:`load_image`) and runs the image steps of the
    model's evaluation pipeline on it (its caption and file-loading steps
    dropped, see :func:`mmclip.datasets.build_pipeline`). Thread-safe, so
    folders can be decoded in parallel.

    Args:
        model (nn.Module): A model built by :func:`mmclip.apis.get_model`.

    Returns:
        callable: ``image -> dict`` with ``inputs`` (a ``(3, S, S)`` uint8
        tensor in the channel order the data preprocessor expects) and
        ``data_samples``, ready for :func:`collate_images`.
    """
    from mmclip.datasets.pipelines import (build_pipeline, clip_test_pipeline,
                                           config_test_pipeline)
    cfg = getattr(model, 'cfg', None) or getattr(model, '_config', None)
    # Without a config: OpenAI's evaluation preprocessing at the image
    # tower's resolution.
    pipeline = build_pipeline(
        config_test_pipeline(cfg)
        or clip_test_pipeline(model.backbone.img_size),
        images_only=True, decoded=True)

    # mmcv's layout is BGR and the preprocessor flips it to RGB; configs for
    # datasets that yield RGB arrays (CIFAR) turn the flip off (to_rgb=False)
    # and then get RGB here too.
    bgr = getattr(model.data_preprocessor, 'to_rgb', True)

    def transform(image: ImageLike) -> dict:
        img = load_image(image)
        if bgr:
            img = np.ascontiguousarray(img[..., ::-1])
        return pipeline(dict(img=img, img_shape=img.shape[:2],
                             ori_shape=img.shape[:2]))

    return transform


def collate_images(model: torch.nn.Module, packed: List[dict]) -> torch.Tensor:
    """Batch outputs of :func:`build_eval_transform` and normalise them with
    the model's data preprocessor (OpenAI mean/std, BGR -> RGB).

    Returns:
        Tensor: ``(N, 3, S, S)`` on the model's device, in its dtype.
    """
    batch = dict(
        inputs=[r['inputs'] for r in packed],
        data_samples=[r['data_samples'] for r in packed])
    with torch.no_grad():
        inputs = model.data_preprocessor(batch, False)['inputs']
    # The preprocessor returns float32; a model cast with .half(),
    # .to(torch.bfloat16) or .double() gets its own dtype.
    dtype = next((p.dtype for p in model.parameters()
                  if p.is_floating_point()), inputs.dtype)
    return inputs.to(dtype)


def preprocess_images(model: torch.nn.Module,
                      images: Sequence[ImageLike]) -> torch.Tensor:
    """Resize, crop and normalise images as the model's config says.

    Uses the image steps of the config's evaluation pipeline
    (``test_pipeline``, else ``test_dataloader.dataset.pipeline``; caption
    and file-loading steps dropped) when the model carries a config
    (``model.cfg`` or mmpretrain's ``model._config``), else the image-only
    :func:`mmclip.datasets.clip_test_pipeline` at the image tower's
    ``img_size``; then the model's data preprocessor (OpenAI
    mean/std, BGR -> RGB). For the OpenAI configs this equals open_clip's
    ``image_transform(..., is_train=False)`` to 1e-6 (tested).

    Args:
        model (nn.Module): A model built by :func:`mmclip.apis.get_model`.
        images (Sequence[str | np.ndarray | PIL.Image.Image]): File paths,
            RGB ``(H, W, 3)`` uint8 arrays or PIL images.

    Returns:
        Tensor: ``(N, 3, S, S)`` on the model's device.
    """
    transform = build_eval_transform(model)
    return collate_images(model, [transform(image) for image in images])
