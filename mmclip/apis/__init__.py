from mmclip.model_index import (get_model_info, list_models,
                                register_mmpretrain_models)
from .inference import (extract_features, inference_model, list_folder,
                        model_classes)
from .model import find_config, get_model, load_pretrained
from .preprocess import load_image, preprocess_images
from .test import prepare_test_config, test
from .train import prepare_train_config, train
from .zero_shot import zero_shot_accuracy, zero_shot_scores

__all__ = [
    'extract_features', 'find_config', 'get_model', 'get_model_info',
    'inference_model', 'list_folder', 'list_models', 'load_image',
    'load_pretrained', 'model_classes', 'register_mmpretrain_models',
    'prepare_test_config', 'prepare_train_config', 'preprocess_images',
    'test', 'train', 'zero_shot_accuracy', 'zero_shot_scores'
]
