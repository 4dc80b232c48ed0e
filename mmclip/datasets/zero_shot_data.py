"""Class names and prompt templates for zero-shot classification.

The templates are OpenAI's published prompt sets (CLIP paper / repository):
80 ImageNet templates, their 7-template subset and 18 CIFAR templates.
Class-name lists come from mmpretrain's categories (ImageNet's "simple"
names are OpenAI's curated ones), :mod:`mmclip.datasets.digits` and
:mod:`mmclip.datasets.shapes`.

:func:`resolve_classnames` and :func:`resolve_templates` turn a config value
(a registered name, a list, or a ``.txt`` file with one entry per line) into
a tuple of strings.
"""
import importlib
import os.path as osp
from typing import Sequence, Tuple, Union

from mmclip.errors import ConfigError, MissingFileError

#: OpenAI's 80 ImageNet prompt templates (CLIP repository's
#: Prompt_Engineering_for_ImageNet notebook).
OPENAI_IMAGENET_TEMPLATES = (
    'a bad photo of a {}.',
    'a photo of many {}.',
    'a sculpture of a {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of the {}.',
    'a rendering of a {}.',
    'graffiti of a {}.',
    'a bad photo of the {}.',
    'a cropped photo of the {}.',
    'a tattoo of a {}.',
    'the embroidered {}.',
    'a photo of a hard to see {}.',
    'a bright photo of a {}.',
    'a photo of a clean {}.',
    'a photo of a dirty {}.',
    'a dark photo of the {}.',
    'a drawing of a {}.',
    'a photo of my {}.',
    'the plastic {}.',
    'a photo of the cool {}.',
    'a close-up photo of a {}.',
    'a black and white photo of the {}.',
    'a painting of the {}.',
    'a painting of a {}.',
    'a pixelated photo of the {}.',
    'a sculpture of the {}.',
    'a bright photo of the {}.',
    'a cropped photo of a {}.',
    'a plastic {}.',
    'a photo of the dirty {}.',
    'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.',
    'a photo of the {}.',
    'a good photo of the {}.',
    'a rendering of the {}.',
    'a {} in a video game.',
    'a photo of one {}.',
    'a doodle of a {}.',
    'a close-up photo of the {}.',
    'a photo of a {}.',
    'the origami {}.',
    'the {} in a video game.',
    'a sketch of a {}.',
    'a doodle of the {}.',
    'a origami {}.',
    'a low resolution photo of a {}.',
    'the toy {}.',
    'a rendition of the {}.',
    'a photo of the clean {}.',
    'a photo of a large {}.',
    'a rendition of a {}.',
    'a photo of a nice {}.',
    'a photo of a weird {}.',
    'a blurry photo of a {}.',
    'a cartoon {}.',
    'art of a {}.',
    'a sketch of the {}.',
    'a embroidered {}.',
    'a pixelated photo of a {}.',
    'itap of the {}.',
    'a jpeg corrupted photo of the {}.',
    'a good photo of a {}.',
    'a plushie {}.',
    'a photo of the nice {}.',
    'a photo of the small {}.',
    'a photo of the weird {}.',
    'the cartoon {}.',
    'art of the {}.',
    'a drawing of the {}.',
    'a photo of the large {}.',
    'a black and white photo of a {}.',
    'the plushie {}.',
    'a dark photo of a {}.',
    'itap of a {}.',
    'graffiti of the {}.',
    'a toy {}.',
    'itap of my {}.',
    'a photo of a cool {}.',
    'a photo of a small {}.',
    'a tattoo of the {}.',
)

#: The 7-template subset OpenAI selected from the 80 (about the same
#: accuracy at 1/11 of the text-tower cost).
OPENAI_IMAGENET_TEMPLATES_7 = (
    'itap of a {}.',
    'a bad photo of the {}.',
    'a origami {}.',
    'a photo of the large {}.',
    'a {} in a video game.',
    'art of the {}.',
    'a photo of the small {}.',
)

#: OpenAI's 18 CIFAR-10/100 prompt templates.
OPENAI_CIFAR_TEMPLATES = (
    'a photo of a {}.',
    'a blurry photo of a {}.',
    'a black and white photo of a {}.',
    'a low contrast photo of a {}.',
    'a high contrast photo of a {}.',
    'a bad photo of a {}.',
    'a good photo of a {}.',
    'a photo of a small {}.',
    'a photo of a big {}.',
    'a photo of the {}.',
    'a blurry photo of the {}.',
    'a black and white photo of the {}.',
    'a low contrast photo of the {}.',
    'a high contrast photo of the {}.',
    'a bad photo of the {}.',
    'a good photo of the {}.',
    'a photo of the small {}.',
    'a photo of the big {}.',
)


def _generated_set(module: str, name: str) -> Tuple[str, ...]:
    """A constant of one of the generated datasets' modules (imported
    lazily: they need numpy and PIL)."""
    return tuple(getattr(importlib.import_module(f'.{module}', __package__),
                         name))


def _mmpretrain_categories(name):
    # mmpretrain's categories module is plain data (no model imports).
    from mmpretrain.datasets import categories
    return tuple(getattr(categories, name))


def _imagenet_subset(name: str) -> Tuple[str, ...]:
    """ImageNet's names of the classes of a 200-class variant (ImageNet-A,
    ImageNet-R), in ImageNet's order."""
    from .imagenet_wnids import WNID_SETS, imagenet_indices
    names = _mmpretrain_categories('IMAGENET_SIMPLE_CATEGORIES')
    return tuple(names[i] for i in imagenet_indices(WNID_SETS[name]))


#: Registered class-name lists: name -> zero-argument loader.
CLASSNAME_SETS = {
    'imagenet': lambda: _mmpretrain_categories('IMAGENET_SIMPLE_CATEGORIES'),
    'imagenet_a': lambda: _imagenet_subset('imagenet_a'),
    'imagenet_r': lambda: _imagenet_subset('imagenet_r'),
    'cifar10': lambda: _mmpretrain_categories('CIFAR10_CATEGORIES'),
    'cifar100': lambda: _mmpretrain_categories('CIFAR100_CATEGORIES'),
    'digits': lambda: _generated_set('digits', 'CLASSNAMES'),
    'shapes': lambda: _generated_set('shapes', 'SHAPES'),
}

#: Registered template sets: name -> zero-argument loader.
TEMPLATE_SETS = {
    'openai_imagenet': lambda: OPENAI_IMAGENET_TEMPLATES,
    'openai_imagenet_7': lambda: OPENAI_IMAGENET_TEMPLATES_7,
    'cifar': lambda: OPENAI_CIFAR_TEMPLATES,
    'digits': lambda: _generated_set('digits', 'ZERO_SHOT_TEMPLATES'),
    'shapes': lambda: _generated_set('shapes', 'ZERO_SHOT_TEMPLATES'),
}


def _read_lines(path: str) -> Tuple[str, ...]:
    with open(path, encoding='utf-8') as f:
        lines = tuple(line.rstrip('\n') for line in f)
    return tuple(line for line in lines if line.strip())


def _resolve(value, registry: dict, what: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        if value in registry:
            items = registry[value]()
        elif value.endswith('.txt') or osp.isfile(value):
            if not osp.isfile(value):
                raise MissingFileError(
                    f'{what} file {value!r} does not exist; pass an existing '
                    f'.txt file (one per line), a list, or one of '
                    f'{sorted(registry)}.')
            items = _read_lines(value)
        else:
            raise ConfigError(f'Unknown {what} {value!r}: use one of '
                              f'{sorted(registry)}, a list, or a .txt file '
                              'with one entry per line.')
    elif isinstance(value, Sequence):
        items = tuple(value)
    else:
        raise TypeError(f'{what} must be a name, a list of strings or a .txt '
                        f'path, got {type(value).__name__}.')
    if not items or not all(isinstance(s, str) for s in items):
        raise ValueError(f'{what} must be a non-empty list of strings.')
    return tuple(items)


def resolve_classnames(classnames: Union[str, Sequence[str]]
                       ) -> Tuple[str, ...]:
    """Class names from a name in :data:`CLASSNAME_SETS` (``'imagenet'``,
    its 200-class subsets ``'imagenet_a'`` / ``'imagenet_r'``, ``'cifar10'``,
    ``'cifar100'``, ``'digits'``, ``'shapes'``), a list, or
    a ``.txt`` path (one name per line, blank lines skipped)."""
    return _resolve(classnames, CLASSNAME_SETS, 'classnames')


def resolve_templates(templates: Union[str, Sequence[str]]
                      ) -> Tuple[str, ...]:
    """Templates from a name in :data:`TEMPLATE_SETS` (``'openai_imagenet'``,
    ``'openai_imagenet_7'``, ``'cifar'``, ``'digits'``, ``'shapes'``), a
    list, or a ``.txt`` path (one per line). Each must contain ``{}``."""
    items = _resolve(templates, TEMPLATE_SETS, 'templates')
    bad = [t for t in items if '{}' not in t]
    if bad:
        raise ValueError(f'Templates must contain "{{}}" where the class name '
                         f'goes: {bad[:3]}')
    return items
