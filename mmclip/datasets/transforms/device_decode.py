"""JPEGs left encoded for the GPU: the random resized crop is drawn in the
data worker and applied after decoding on the device."""
import io
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmpretrain.datasets.transforms import RandomResizedCrop
from PIL import Image

from mmclip.registry import TRANSFORMS
from .loading import LoadImageRGB

_EXIF_ORIENTATION = 0x0112


def device_decodable_size(data: bytes) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of a JPEG that the device decoder handles as the
    CPU path would: complete (ends with the end-of-image marker), RGB or
    grey, no EXIF rotation. None for anything else.

    Only the header is parsed, no pixel is decoded.
    """
    if data[:3] != b'\xff\xd8\xff' or data.rstrip(b'\0')[-2:] != b'\xff\xd9':
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            if (img.format != 'JPEG' or img.mode not in ('RGB', 'L') or
                    img.getexif().get(_EXIF_ORIENTATION, 1) != 1):
                return None
            return img.size
    except Exception:  # the CPU path decodes it and reports what is wrong
        return None


@TRANSFORMS.register_module()
class RandomResizedCropOnDevice(LoadImageRGB):
    """``LoadImageRGB`` + ``RandomResizedCrop`` (bicubic), with the JPEG
    decoding and the crop done on the GPU by
    :class:`~mmclip.models.utils.DeviceDecodeDataPreprocessor`.

    For a JPEG the device decodes as the CPU would (see
    :func:`device_decodable_size`), the data worker reads the file and its
    header only, draws the crop box as mmpretrain's ``RandomResizedCrop``
    does, and passes on the encoded bytes: ``img`` is a 1-D uint8 tensor and
    ``crop_box`` is ``(top, left, height, width)``. Every other image (PNG,
    WebP, CMYK or rotated JPEG, broken files) is loaded and cropped here as
    ``LoadImageRGB`` then ``RandomResizedCrop`` would, so bad samples are
    reported the same way. Either way the model gets a BGR image of
    ``scale`` (the device path flips nvJPEG's RGB), as the data preprocessor
    (``to_rgb=True``) expects.

    Off by default; for data-bound training (large JPEGs, few CPU cores per
    GPU). Batches need ``collate_fn=dict(type='pseudo_collate')`` (encoded
    files differ in length). ``decode_min_side`` does not apply to the
    device path, which always decodes in full.

    **Required Keys:** ``img_bytes`` or ``img_path``. **Added Keys:**
    ``img``, ``img_shape``, ``ori_shape``, and ``crop_box`` on the device
    path.

    Args:
        scale (int | Sequence[int]): Output size, as ``RandomResizedCrop``'s.
        crop_ratio_range (tuple[float, float]): Range of the crop's share of
            the image area. Defaults to ``(0.08, 1.0)``.
        aspect_ratio_range (tuple[float, float]): Range of the crop's aspect
            ratio. Defaults to ``(3 / 4, 4 / 3)``.
        max_attempts (int): Draws before the centre-crop fallback.
            Defaults to 10.
        **kwargs: :class:`LoadImageRGB`'s arguments, for the CPU path.
    """

    def __init__(self,
                 scale: Union[int, Sequence[int]],
                 crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10,
                 **kwargs):
        super().__init__(**kwargs)
        self.crop = RandomResizedCrop(
            scale,
            crop_ratio_range=crop_ratio_range,
            aspect_ratio_range=aspect_ratio_range,
            max_attempts=max_attempts,
            interpolation='bicubic',
            backend='pillow')

    def transform(self, results: dict) -> Optional[dict]:
        data = self.read_bytes(results)
        if data is None:
            return None
        size = device_decodable_size(data)
        if size is None:
            results = self.decode(results, data)
            return None if results is None else self.crop(results)
        width, height = size
        # The crop's sampling needs only the image's shape.
        box = self.crop.rand_crop_params(
            np.empty((height, width, 0), np.uint8))
        results['img'] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        results['crop_box'] = tuple(int(v) for v in box)
        results['ori_shape'] = (height, width)
        results['img_shape'] = tuple(self.crop.scale)  # (H, W)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.crop.scale}, '
                f'crop_ratio_range={self.crop.crop_ratio_range}, '
                f'aspect_ratio_range={self.crop.aspect_ratio_range}, '
                f'max_attempts={self.crop.max_attempts}, '
                + super().__repr__().split('(', 1)[1])
