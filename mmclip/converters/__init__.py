"""Convert CLIP checkpoints of OpenAI, open_clip, transformers and mmpretrain
to mmclip's layout (``python tools/model_converters/clip_to_mmclip.py``), and
mmclip classifiers back to transformers
(``python tools/model_converters/mmclip_to_hf.py``)."""
from mmclip.models.pretrained import check_model_cfg
from .arch import build_model_cfg, infer_text_arch, infer_vision_arch
from .classifier import classifier_config, hf_image_processor, hf_preprocess
from .common import ConversionError, UnknownLayoutError
from .convert import (classifier_config_path, convert_checkpoint, convert_file,
                      save_mmclip_checkpoint)
from .detect import FORMATS, describe_formats, detect_format
from .hf_export import check_exportable, export_hf_classifier
from .loading import SourceCheckpoint, load_source
from .sources import ActivationWarning

__all__ = [
    'convert_checkpoint', 'convert_file', 'save_mmclip_checkpoint',
    'classifier_config', 'classifier_config_path', 'hf_preprocess',
    'hf_image_processor', 'check_exportable', 'export_hf_classifier',
    'load_source', 'SourceCheckpoint', 'detect_format', 'describe_formats',
    'FORMATS', 'infer_vision_arch', 'infer_text_arch', 'build_model_cfg',
    'check_model_cfg', 'ActivationWarning', 'ConversionError',
    'UnknownLayoutError'
]
