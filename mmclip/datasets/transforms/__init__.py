"""mmclip's data transforms (registered in ``mmclip.registry.TRANSFORMS``)."""
from .device_decode import RandomResizedCropOnDevice
from .formatting import PackImageText
from .loading import LoadImageRGB, decode_image, pil_to_rgb_array
from .text import SampleCaption, TokenizeText, clean_caption

__all__ = [
    'LoadImageRGB', 'RandomResizedCropOnDevice', 'SampleCaption',
    'TokenizeText', 'PackImageText',
    'decode_image', 'pil_to_rgb_array', 'clean_caption'
]
