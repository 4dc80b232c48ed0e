from .arch import resolve_arch
from .class_names import model_classes
from .data_preprocessor import CLIPDataPreprocessor
from .device_decode import DeviceDecodeDataPreprocessor
from .text_embedder import (TextEmbedder, state_fingerprint,
                            text_tower_fingerprint)
from .zero_shot import build_zero_shot_classifier, check_scale, resolve_scale

__all__ = [
    'CLIPDataPreprocessor',
    'DeviceDecodeDataPreprocessor', 'TextEmbedder',
    'build_zero_shot_classifier', 'check_scale',
    'model_classes', 'resolve_arch', 'resolve_scale', 'state_fingerprint',
    'text_tower_fingerprint'
]
