"""mmclip's registries: one child of every mmpretrain registry, scope
``mmclip``.

A config with ``default_scope = 'mmclip'`` builds mmclip's own modules first
and falls back to mmpretrain's (and through it mmengine's), so
``ImageClassifier``, ``Accuracy`` or ``ClsDataPreprocessor`` stay usable from
mmclip configs.
``locations`` makes a registry import the modules that fill it the first time a
name is looked up, so ``MODELS.build(dict(type='CLIPVisionTransformer', ...))``
works without importing ``mmclip.models`` by hand.

mmpretrain already registers ``CLIP``, ``CLIPZeroShot``, ``CLIPTransformer``
and ``CLIPProjection``; mmclip never reuses those names.
"""
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'BATCH_AUGMENTS', 'TASK_UTILS',
    'TOKENIZER', 'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS'
]


def _child(name: str, room: str) -> Registry:
    """Create the mmclip child of mmpretrain's registry ``name``, filled by
    ``mmclip.<room>``.

    mmengine imports only the child's locations on lookup, never the
    parent's, so mmpretrain's own (``mmpretrain.<room>``: its rooms have
    mmclip's names) are listed too: a name that falls back to mmpretrain is
    then registered whatever was imported before.
    ``tests/test_registry.py`` checks them against mmpretrain's registries.
    """
    parent = getattr(mmpretrain_registry, name)
    return Registry(
        parent.name, parent=parent, scope='mmclip',
        locations=[f'mmclip.{room}', f'mmpretrain.{room}'])


RUNNERS = _child('RUNNERS', 'engine')
RUNNER_CONSTRUCTORS = _child('RUNNER_CONSTRUCTORS', 'engine')
LOOPS = _child('LOOPS', 'engine')
HOOKS = _child('HOOKS', 'engine')
LOG_PROCESSORS = _child('LOG_PROCESSORS', 'engine')
OPTIMIZERS = _child('OPTIMIZERS', 'engine')
OPTIM_WRAPPERS = _child('OPTIM_WRAPPERS', 'engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('OPTIM_WRAPPER_CONSTRUCTORS', 'engine')
PARAM_SCHEDULERS = _child('PARAM_SCHEDULERS', 'engine')
DATASETS = _child('DATASETS', 'datasets')
DATA_SAMPLERS = _child('DATA_SAMPLERS', 'datasets')
TRANSFORMS = _child('TRANSFORMS', 'datasets')
MODELS = _child('MODELS', 'models')
MODEL_WRAPPERS = _child('MODEL_WRAPPERS', 'models')
WEIGHT_INITIALIZERS = _child('WEIGHT_INITIALIZERS', 'models')
BATCH_AUGMENTS = _child('BATCH_AUGMENTS', 'models')
TASK_UTILS = _child('TASK_UTILS', 'models')
TOKENIZER = _child('TOKENIZER', 'models')
METRICS = _child('METRICS', 'evaluation')
EVALUATORS = _child('EVALUATORS', 'evaluation')
VISUALIZERS = _child('VISUALIZERS', 'visualization')
VISBACKENDS = _child('VISBACKENDS', 'visualization')
