# Runtime for contrastive pretraining: the defaults plus the temperature
# clamp, RNG states in checkpoints (exact resume) and the training curves;
# the step's logged scalars reach the host only when read (no sync per step).
_base_ = './default_runtime.py'
default_hooks = dict(runtime_info=dict(type='DeferredRuntimeInfoHook'))
custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='LogitScaleClampHook'),
    dict(type='RNGStateHook'),
    dict(type='TrainingCurveHook'),
]
