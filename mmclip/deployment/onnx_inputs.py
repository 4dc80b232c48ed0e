"""The inputs of an exported CLIP, computed with numpy and Pillow only: the
export folder's sidecar (:func:`read_export_meta`), images decoded and
preprocessed as mmclip's test pipeline does (:func:`load_rgb`,
:func:`preprocess_image`), and the small array helpers the scorer
(:class:`mmclip.deployment.OnnxCLIP`) shares. No torch, mmengine or
mmpretrain here (see :mod:`mmclip.dependencies`)."""
import json
import os
import os.path as osp
from typing import Sequence, Union

import numpy as np
from PIL import Image, ImageOps

from mmclip.errors import MissingFileError

ImageLike = Union[str, os.PathLike, np.ndarray, Image.Image]

#: The sidecar's name in an export folder, and the format version it holds.
#: Version 2 calls the multipliers ``scale``; version 1 (still read) called
#: them ``logit_scale``, the name of the model's log temperature.
META_FILE = 'mmclip_onnx.json'
META_VERSION = 2
#: The sidecar's entry of the int8 image tower
#: (:func:`mmclip.deployment.quantize_image_tower`).
INT8_META_KEY = 'image_int8'


def read_export_meta(export_dir: str, export_flags: str = '') -> dict:
    """The sidecar of an export folder.

    Args:
        export_dir (str): A folder written by
            :func:`mmclip.deployment.export_onnx`.
        export_flags (str): Flags the export command in the error message
            gets (e.g. ``' --int8'``). Defaults to ``''``.

    Returns:
        dict: See :func:`mmclip.deployment.onnx_export.export_meta`.

    Raises:
        MissingFileError: ``export_dir`` holds no export; the message names
            the command that makes one.
    """
    path = osp.join(export_dir, META_FILE)
    if not osp.isfile(path):
        raise MissingFileError(
            f'{export_dir!r} has no {META_FILE}: export the model with '
            '`python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT '
            f'--out {export_dir}{export_flags}`.')
    with open(path) as f:
        meta = json.load(f)
    if meta.get('format_version') == 1:
        for part in (meta, meta.get('zero_shot') or {}):
            part['scale'] = part.pop('logit_scale')
    elif meta.get('format_version') != META_VERSION:
        raise ValueError(
            f'{path} has format_version {meta.get("format_version")!r}; this '
            f'mmclip reads versions 1 to {META_VERSION}. Export the model '
            'again with this mmclip.')
    return meta


def write_export_meta(meta: dict, export_dir: str) -> None:
    """Write ``meta`` as the sidecar of ``export_dir``."""
    with open(osp.join(export_dir, META_FILE), 'w') as f:
        json.dump(meta, f, indent=1)


def image_tower_file(meta: dict, export_dir: str, int8: bool = False) -> str:
    """The path of an export's image tower.

    Args:
        meta (dict): The folder's sidecar (:func:`read_export_meta`).
        export_dir (str): The export folder.
        int8 (bool): The int8 tower instead of the float32 one. Defaults to
            False.

    Returns:
        str: The ``.onnx`` file.

    Raises:
        MissingFileError: ``int8`` and the folder has no int8 tower; the
            message names the commands that make it.
    """
    tower = meta.get(INT8_META_KEY) if int8 else meta['image']
    path = osp.join(export_dir, tower['file']) if tower else None
    if int8 and not (path and osp.isfile(path)):
        raise MissingFileError(
            f'{export_dir!r} has no int8 image tower: quantise the export '
            'with `python -c "from mmclip.deployment import '
            f'quantize_image_tower; quantize_image_tower({export_dir!r})"`'
            ' or export with `python tools/deployment/pytorch2onnx.py '
            f'CONFIG CHECKPOINT --out {export_dir} --int8`.')
    return path


def load_rgb(image: ImageLike) -> np.ndarray:
    """One image as an ``(H, W, 3)`` uint8 RGB array, decoded with Pillow.

    Files get their EXIF orientation applied; transparency is composited
    over white and other modes (grey, palette, CMYK) converted to RGB, as
    :func:`mmclip.apis.load_image` does for 8-bit images.

    Args:
        image (str | Path | np.ndarray | PIL.Image.Image): A file, an RGB
            ``(H, W, 3)`` / RGBA ``(H, W, 4)`` / grey ``(H, W)`` uint8 array,
            or a PIL image.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
                image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ValueError(
                'Expected an (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey '
                f'uint8 array, got {image.dtype} of shape {image.shape}.')
        image = Image.fromarray(image)
    elif isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as file:
                image = ImageOps.exif_transpose(file)
        except (OSError, ValueError) as err:
            raise ValueError(f'Cannot read image {os.fspath(image)!r}: '
                             f'{err}') from None
    elif not isinstance(image, Image.Image):
        raise ValueError('Expected an image path, a PIL image or a numpy '
                         f'array, got {type(image).__name__}.')
    if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
        rgba = image.convert('RGBA')
        image = Image.alpha_composite(
            Image.new('RGBA', rgba.size, (255, 255, 255, 255)), rgba)
    return np.array(image.convert('RGB'), dtype=np.uint8)


def preprocess_image(rgb: np.ndarray, image_meta: dict) -> np.ndarray:
    """Resize the short side, centre-crop and normalise one image.

    Args:
        rgb (np.ndarray): ``(H, W, 3)`` uint8 RGB.
        image_meta (dict): The sidecar's ``image`` entry: ``resize_short``,
            ``crop_size``, ``interpolation`` (a Pillow filter name),
            ``mean`` and ``std`` (RGB, 0-1 range).

    Returns:
        np.ndarray: ``(3, crop_size, crop_size)`` float32.
    """
    h, w = rgb.shape[:2]
    short, crop = image_meta['resize_short'], image_meta['crop_size']
    # mmpretrain's ResizeEdge: the short side to `short`, the long one
    # truncated (int), as torchvision's Resize does for OpenAI CLIP.
    size = (short, int(short * h / w)) if w < h else (int(short * w / h),
                                                      short)
    resample = Image.Resampling[image_meta['interpolation'].upper()]
    img = np.asarray(Image.fromarray(rgb).resize(size, resample))
    # mmcv's CenterCrop offsets.
    top = max(0, int(round((img.shape[0] - crop) / 2.)))
    left = max(0, int(round((img.shape[1] - crop) / 2.)))
    img = img[top:top + crop, left:left + crop]
    # As mmpretrain's ClsDataPreprocessor: 0-255 pixels, 0-255 mean/std
    # (scaled in float64: the float32 values of the model's buffers).
    mean = (255 * np.asarray(image_meta['mean'])).astype(np.float32)
    std = (255 * np.asarray(image_meta['std'])).astype(np.float32)
    return ((img.astype(np.float32) - mean) / std).transpose(2, 0, 1)


def preprocess_batch(images: Sequence[ImageLike],
                     image_meta: dict) -> np.ndarray:
    """Images as an image tower's input (:func:`load_rgb` then
    :func:`preprocess_image` each).

    Args:
        images (Sequence[str | np.ndarray | PIL.Image.Image]): See
            :func:`load_rgb`.
        image_meta (dict): The sidecar's ``image`` entry.

    Returns:
        np.ndarray: ``(N, 3, S, S)`` float32.
    """
    if not len(images):
        raise ValueError('No images given: give at least one image.')
    return np.stack(
        [preprocess_image(load_rgb(image), image_meta) for image in images])


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (``torch.nn.functional.normalize``)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
