from .model import find_config, get_model, load_pretrained
from .preprocess import default_clip_pipeline, preprocess_images

__all__ = [
    'default_clip_pipeline', 'find_config', 'get_model', 'load_pretrained',
    'preprocess_images'
]
