from mmclip.dependencies import has_torch, torch_required
# Scores with models exported to ONNX; needs no torch.
from mmclip.deployment import OnnxCLIP
from mmclip.model_index import (get_model_info, list_models,
                                register_mmpretrain_models)

if has_torch():
    from .inference import (extract_features, inference_model, list_folder,
                            model_classes)
    from .model import find_config, get_model, load_pretrained
    from .preprocess import load_image, preprocess_images
    from .search import ImageSearch, index_images, search_images
    from .test import prepare_test_config, test
    from .train import prepare_train_config, train
    from .wise_ft import evaluate_wise_ft, interpolate_weights, wise_ft
    from .zero_shot import zero_shot_accuracy, zero_shot_scores

__all__ = [
    'extract_features', 'find_config', 'get_model', 'get_model_info',
    'ImageSearch', 'index_images', 'inference_model', 'list_folder',
    'list_models', 'load_image', 'load_pretrained', 'model_classes',
    'OnnxCLIP', 'register_mmpretrain_models', 'prepare_test_config',
    'search_images', 'prepare_train_config', 'preprocess_images', 'test',
    'train', 'evaluate_wise_ft', 'interpolate_weights', 'wise_ft',
    'zero_shot_accuracy', 'zero_shot_scores'
]


def __getattr__(name):
    # Only reached for names not imported above: in the scoring-only
    # install (mmclip.dependencies), the ones that need torch.
    if name in __all__:
        raise torch_required(f'mmclip.apis.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
