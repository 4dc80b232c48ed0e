"""Convert CLIP checkpoints of OpenAI, open_clip, transformers and mmpretrain
to mmclip's layout (``python tools/model_converters/clip_to_mmclip.py``)."""
from mmclip.models.pretrained import check_model_cfg
from .arch import build_model_cfg, infer_text_arch, infer_vision_arch
from .common import ConversionError, UnknownLayoutError
from .convert import convert_checkpoint, convert_file, save_mmclip_checkpoint
from .detect import FORMATS, describe_formats, detect_format
from .loading import SourceCheckpoint, load_source
from .sources import ActivationWarning

__all__ = [
    'convert_checkpoint', 'convert_file', 'save_mmclip_checkpoint',
    'load_source', 'SourceCheckpoint', 'detect_format', 'describe_formats',
    'FORMATS', 'infer_vision_arch', 'infer_text_arch', 'build_model_cfg',
    'check_model_cfg', 'ActivationWarning', 'ConversionError',
    'UnknownLayoutError'
]
