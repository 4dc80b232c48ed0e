from .curve_hook import TrainingCurveHook
from .logit_scale_hook import LogitScaleClampHook
from .rng_state_hook import RNGStateHook
from .show_predictions_hook import ShowPredictionsHook
from .trust_work_dir_hook import TrustWorkDirHook

__all__ = [
    'LogitScaleClampHook', 'RNGStateHook', 'ShowPredictionsHook',
    'TrainingCurveHook', 'TrustWorkDirHook'
]
