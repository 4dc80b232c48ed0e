"""mmclip: CLIP for the OpenMMLab ecosystem."""
import warnings

from .version import __version__

# mmcv-lite has no compiled ops, and mmcv warns on import about one
# (deformable attention) that mmclip never uses. Silence only that message.
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

__all__ = ["__version__", "tokenize"]


def __getattr__(name):
    # ``mmclip.tokenize`` is resolved on first access so that ``import mmclip``
    # does not import torch, ftfy or the model zoo.
    if name == 'tokenize':
        from .models.tokenizers import tokenize
        return tokenize
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
