from .curve_hook import TrainingCurveHook
from .deferred_runtime_info_hook import DeferredRuntimeInfoHook
from .logit_scale_hook import LogitScaleClampHook
from .plain_checkpoint_hook import PlainCheckpointHook
from .rng_state_hook import RNGStateHook
from .show_predictions_hook import ShowPredictionsHook

__all__ = [
    'DeferredRuntimeInfoHook', 'LogitScaleClampHook', 'PlainCheckpointHook',
    'RNGStateHook', 'ShowPredictionsHook', 'TrainingCurveHook'
]
