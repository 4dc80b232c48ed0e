"""mmclip: CLIP for the OpenMMLab ecosystem."""
import warnings

from .version import __version__

# mmcv-lite has no compiled ops, and mmcv warns on import about one
# (deformable attention) that mmclip never uses. Silence only that message.
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

__all__ = ["__version__", "tokenize"]


def __getattr__(name):
    # ``mmclip.tokenize`` is resolved on first access, not imported here with
    # the tokenizer's ftfy and regex.
    if name == 'tokenize':
        from .models.tokenizers import tokenize
        return tokenize
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


# Make mmclip's models known to mmpretrain.list_models / get_model /
# inference_model by name. This imports mmpretrain (and so torch), which the
# scoring-only install has not (see mmclip.dependencies).
from .dependencies import has_torch  # noqa: E402
from .model_index import register_mmpretrain_models  # noqa: E402

if has_torch():
    try:
        register_mmpretrain_models()
    except FileNotFoundError as err:  # a broken install must not break import
        warnings.warn(
            f'mmclip models are not registered with mmpretrain: {err}')
