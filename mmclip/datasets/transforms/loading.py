"""Robust image loading for web-scale image-text data."""
import contextlib
import io
import math
import threading
import warnings
from typing import Optional, Sequence

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image, ImageOps, UnidentifiedImageError

from mmclip.registry import TRANSFORMS
from ..bad_samples import mark_bad

# Modes that hold 16/32-bit integer grey levels; PNGs with 16-bit grey open as
# 'I;16' (Pillow >= 10) or 'I' (older Pillow).
_WIDE_INT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or (
        'transparency' in img.info)


def pil_to_rgb_array(img: Image.Image,
                     background: Sequence[int] = (255, 255, 255)
                     ) -> np.ndarray:
    """Convert a PIL image of any common mode to an RGB uint8 array.

    - 16/32-bit grey (``I;16``, ``I``): scaled from 0..65535 to 0..255 (an
      ``I`` image whose values all fit in 0..255 is taken as 8-bit); a plain
      ``convert('RGB')`` would clip nearly everything to white.
    - float (``F``): clipped to 0..255.
    - transparency (``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a
      ``transparency`` entry): composited over ``background``; dropping the
      alpha channel instead shows whatever colour transparent pixels happen to
      store (often black).
    - everything else (``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ...):
      Pillow's ``convert('RGB')``.

    Args:
        img (PIL.Image.Image): A loaded image.
        background (Sequence[int]): RGB colour behind transparent pixels.
            Defaults to white ``(255, 255, 255)``.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 array in RGB order.
    """
    if img.mode in _WIDE_INT_MODES or img.mode == 'F':
        arr = np.asarray(img).astype(np.float64)
        if img.mode != 'F' and (img.mode != 'I' or arr.max() > 255):
            arr = arr / 257.0  # 65535 -> 255
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if _has_alpha(img):
        with warnings.catch_warnings():
            # Pillow warns about palette transparency; converting to RGBA is
            # exactly what it recommends.
            warnings.simplefilter('ignore', UserWarning)
            rgba = img.convert('RGBA')
        canvas = Image.new('RGBA', rgba.size, tuple(background) + (255, ))
        img = Image.alpha_composite(canvas, rgba)
    if img.mode != 'RGB':
        img = img.convert('RGB')
    return np.array(img, dtype=np.uint8)  # a writable copy


class ImageTooLargeError(ValueError):
    """An image has more pixels than the caller allows."""


class _PillowPixelLimit:
    """Raise Pillow's process-wide decompression-bomb limit
    (``Image.MAX_IMAGE_PIXELS``: warns above 89 MP, refuses above 179 MP)
    while any caller decodes with a larger ``max_pixels``; the user's own
    value comes back when the last such caller is done. Reference-counted
    under a lock, so concurrent decoding threads neither undo each other's
    limit nor leave a raised one behind. The limit is set to ``max_pixels``
    itself, so Pillow never warns below it; above it
    :func:`decode_image` raises its own error."""

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._saved = None

    @contextlib.contextmanager
    def raised_to(self, max_pixels: Optional[int]):
        if max_pixels is None:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._saved = Image.MAX_IMAGE_PIXELS
            self._users += 1
            if Image.MAX_IMAGE_PIXELS is not None:  # None: no Pillow check
                Image.MAX_IMAGE_PIXELS = max(int(max_pixels),
                                             Image.MAX_IMAGE_PIXELS)
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    Image.MAX_IMAGE_PIXELS = self._saved


_PIXEL_LIMIT = _PillowPixelLimit()


def decode_image(data: bytes,
                 exif_transpose: bool = True,
                 background: Sequence[int] = (255, 255, 255),
                 max_pixels: Optional[int] = None,
                 draft_pixels: Optional[int] = None,
                 draft_min_side: int = 2048) -> np.ndarray:
    """Decode image bytes with PIL into an RGB uint8 array.

    Args:
        data (bytes): Encoded image (JPEG, PNG, WebP, ...).
        exif_transpose (bool): Apply the EXIF orientation tag (phone photos
            are stored sideways plus a tag). Defaults to True.
        background (Sequence[int]): See :func:`pil_to_rgb_array`.
        max_pixels (int, optional): Largest ``width * height`` accepted;
            a larger image raises :class:`ImageTooLargeError` before any
            pixel is decoded. None keeps Pillow's decompression-bomb limit
            (warns above 89 MP, refuses above 179 MP). Defaults to None.
        draft_pixels (int, optional): JPEGs with more pixels than this are
            decoded with libjpeg's DCT scaling (1/2, 1/4 or 1/8) to the
            smallest size whose short side is still ``>= draft_min_side``:
            a 100 MP photo then costs a few MB instead of 300 MB. Pixels
            differ slightly from a full decode followed by a resize, so
            None (the default) always decodes at full size.
        draft_min_side (int): See ``draft_pixels``. Defaults to 2048, far
            above any CLIP input resolution.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB array.

    Raises:
        Exception: Whatever PIL raises for unreadable, truncated or too large
            data (``OSError``, ``Image.DecompressionBombError``, ...), and
            :class:`ImageTooLargeError`.
    """
    with _PIXEL_LIMIT.raised_to(max_pixels), Image.open(
            io.BytesIO(data)) as img:
        width, height = img.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageTooLargeError(
                f'{width}x{height} = {width * height / 1e6:.0f} megapixels, '
                f'more than the limit of {max_pixels / 1e6:.0f} megapixels')
        if (draft_pixels is not None and img.format == 'JPEG'
                and width * height > draft_pixels
                and min(width, height) > 2 * draft_min_side):
            scale = draft_min_side / min(width, height)
            img.draft(img.mode, (math.ceil(width * scale),
                                 math.ceil(height * scale)))
        img.load()  # decode now: truncated files fail here, not later
        if exif_transpose:
            try:
                # In place: without an orientation tag nothing is copied.
                ImageOps.exif_transpose(img, in_place=True)
            except Exception:  # a broken EXIF block should not cost the image
                pass
        return pil_to_rgb_array(img, background)


@TRANSFORMS.register_module()
class LoadImageRGB(BaseTransform):
    """Load an image with PIL robustly, as a BGR uint8 array like mmcv's.

    Odd modes (CMYK, 16-bit grey, palette with transparency, LA, RGBA, grey)
    are converted to 3-channel uint8 (see :func:`pil_to_rgb_array`), the EXIF
    orientation is applied, and the channels are returned in BGR order because
    mmpretrain's transforms, ``PackInputs`` and the data preprocessor
    (``to_rgb=True``) expect mmcv's layout.

    A missing, truncated or undecodable file gives ``None`` (mmengine's
    dataset then fetches another sample) after writing the reason into
    ``results['bad_sample_reason']`` for the dataset's bad-sample log.

    **Decode at scale.** With ``decode_min_side``, a JPEG whose short side
    is more than twice that is decoded by libjpeg at 1/2, 1/4 or 1/8 of its
    size (Pillow's ``draft``), the smallest whose short side is still at
    least ``decode_min_side``: a 1600x1200 photo for a 224px random crop
    (``decode_min_side=448``) decodes at 800x600, a quarter of the pixels
    for the decoder and every later step. The DCT scaling filters a little
    differently from a full decode followed by a resize, so pixels differ
    slightly; the training configs use it, evaluation decodes in full.

    **Required Keys:** ``img_bytes`` (bytes, e.g. from a tar shard) or
    ``img_path`` (str).

    **Added Keys:** ``img`` ((H, W, 3) uint8, BGR), ``img_shape`` (H, W),
    ``ori_shape`` (H, W). ``img_bytes`` is removed.

    Args:
        exif_transpose (bool): Apply EXIF orientation. Defaults to True.
        background (Sequence[int]): RGB colour composited behind transparent
            pixels. Defaults to white ``(255, 255, 255)``.
        to_bgr (bool): Return BGR (mmcv layout). False returns RGB.
            Defaults to True.
        decode_min_side (int, optional): Decode large JPEGs at the smallest
            DCT scale whose short side is at least this (see above), e.g.
            twice the training resolution. Defaults to None (always decode
            at full size).
        backend_args (dict, optional): mmengine file backend arguments for
            ``img_path`` (e.g. a petrel/S3 backend). Defaults to None (local).
    """

    def __init__(self,
                 exif_transpose: bool = True,
                 background: Sequence[int] = (255, 255, 255),
                 to_bgr: bool = True,
                 decode_min_side: Optional[int] = None,
                 backend_args: Optional[dict] = None):
        if len(background) != 3:
            raise ValueError(f'background must be an RGB triple, got '
                             f'{background}')
        if decode_min_side is not None and decode_min_side < 1:
            raise ValueError('decode_min_side must be a positive number of '
                             f'pixels or None, got {decode_min_side}')
        self.exif_transpose = exif_transpose
        self.background = tuple(int(c) for c in background)
        self.to_bgr = to_bgr
        self.decode_min_side = decode_min_side
        self.backend_args = backend_args

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_bytes']`` or ``results['img_path']``.

        Args:
            results (dict): Sample dict.

        Returns:
            dict | None: The dict with ``img`` added, None for a bad file.
        """
        data = self.read_bytes(results)
        return None if data is None else self.decode(results, data)

    def read_bytes(self, results: dict) -> Optional[bytes]:
        """The encoded image (popped from ``img_bytes`` or read from
        ``img_path``); None after marking the sample bad."""
        data = results.pop('img_bytes', None)
        if data is None:
            path = results.get('img_path')
            if not path:
                return mark_bad(results, 'no img_path / img_bytes in sample')
            try:
                data = fileio.get(path, backend_args=self.backend_args)
            except FileNotFoundError:
                return mark_bad(results, 'file not found')
            except Exception as e:  # permissions, remote backend errors
                return mark_bad(results,
                                f'cannot read file: {type(e).__name__}: {e}')
        if not data:
            return mark_bad(results, 'empty file (0 bytes)')
        return data

    def decode(self, results: dict, data: bytes) -> Optional[dict]:
        """Decode ``data`` into ``results['img']`` (None after marking the
        sample bad)."""
        draft = {} if self.decode_min_side is None else dict(
            draft_pixels=0, draft_min_side=self.decode_min_side)
        try:
            img = decode_image(data, self.exif_transpose, self.background,
                               **draft)
        except UnidentifiedImageError:
            return mark_bad(results, 'cannot decode image: not an image '
                            'format PIL recognises (an HTML page? random '
                            'bytes?)')
        except Exception as e:  # PIL raises many types for broken data
            return mark_bad(results,
                            f'cannot decode image: {type(e).__name__}: {e}')
        if self.to_bgr:
            img = mmcv.rgb2bgr(img)  # OpenCV: ~30x numpy's reversed copy
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(exif_transpose='
                f'{self.exif_transpose}, background={self.background}, '
                f'to_bgr={self.to_bgr}, decode_min_side='
                f'{self.decode_min_side}, backend_args={self.backend_args})')
