"""Deployment: export a CLIP to ONNX (:func:`export_onnx`, needs PyTorch),
score with the exported files (:class:`OnnxCLIP`, does not), and quantise
the image tower to int8 for CPUs (:func:`quantize_image_tower`,
:class:`Int8ImageEncoder`)."""
from .onnx_inputs import META_FILE, read_export_meta
from .onnx_runtime import OnnxCLIP
from .quantize import Int8ImageEncoder, quantize_image_tower

__all__ = [
    'META_FILE', 'Int8ImageEncoder', 'OnnxCLIP', 'export_onnx',
    'quantize_image_tower', 'read_export_meta'
]


def __getattr__(name):
    # Imported on first use: the exporter needs torch, the scorer must not.
    if name == 'export_onnx':
        from .onnx_export import export_onnx
        return export_onnx
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
