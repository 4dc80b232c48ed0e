"""Deployment: export a CLIP to ONNX (:func:`export_onnx`, needs PyTorch)
and score with the exported files (:class:`OnnxCLIP`, does not)."""
from .onnx_inputs import META_FILE, read_export_meta
from .onnx_runtime import OnnxCLIP

__all__ = ['META_FILE', 'OnnxCLIP', 'export_onnx', 'read_export_meta']


def __getattr__(name):
    # Imported on first use: the exporter needs torch, the scorer must not.
    if name == 'export_onnx':
        from .onnx_export import export_onnx
        return export_onnx
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
