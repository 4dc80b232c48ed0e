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


def _child(name: str, locations: list) -> Registry:
    """Create the mmclip child of mmpretrain's registry ``name``."""
    parent = getattr(mmpretrain_registry, name)
    # mmengine imports only the child's locations on lookup, never the
    # parent's, so list mmpretrain's own too: a name that falls back to
    # mmpretrain is then registered whatever was imported before.
    return Registry(
        parent.name, parent=parent, scope='mmclip',
        locations=locations + list(parent._locations))


RUNNERS = _child('RUNNERS', ['mmclip.engine'])
RUNNER_CONSTRUCTORS = _child('RUNNER_CONSTRUCTORS', ['mmclip.engine'])
LOOPS = _child('LOOPS', ['mmclip.engine'])
HOOKS = _child('HOOKS', ['mmclip.engine'])
LOG_PROCESSORS = _child('LOG_PROCESSORS', ['mmclip.engine'])
OPTIMIZERS = _child('OPTIMIZERS', ['mmclip.engine'])
OPTIM_WRAPPERS = _child('OPTIM_WRAPPERS', ['mmclip.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('OPTIM_WRAPPER_CONSTRUCTORS',
                                    ['mmclip.engine'])
PARAM_SCHEDULERS = _child('PARAM_SCHEDULERS', ['mmclip.engine'])
DATASETS = _child('DATASETS', ['mmclip.datasets'])
DATA_SAMPLERS = _child('DATA_SAMPLERS', ['mmclip.datasets'])
TRANSFORMS = _child('TRANSFORMS', ['mmclip.datasets'])
MODELS = _child('MODELS', ['mmclip.models'])
MODEL_WRAPPERS = _child('MODEL_WRAPPERS', ['mmclip.models'])
WEIGHT_INITIALIZERS = _child('WEIGHT_INITIALIZERS', ['mmclip.models'])
BATCH_AUGMENTS = _child('BATCH_AUGMENTS', ['mmclip.models'])
TASK_UTILS = _child('TASK_UTILS', ['mmclip.models'])
TOKENIZER = _child('TOKENIZER', ['mmclip.models'])
METRICS = _child('METRICS', ['mmclip.evaluation'])
EVALUATORS = _child('EVALUATORS', ['mmclip.evaluation'])
VISUALIZERS = _child('VISUALIZERS', ['mmclip.visualization'])
VISBACKENDS = _child('VISBACKENDS', ['mmclip.visualization'])
