# Runtime for contrastive pretraining: the defaults plus the temperature
# clamp, RNG states in checkpoints (exact resume) and the training curves.
_base_ = './default_runtime.py'
custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='LogitScaleClampHook'),
    dict(type='RNGStateHook'),
    dict(type='TrainingCurveHook'),
]
