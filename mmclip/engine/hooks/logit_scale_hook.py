"""Keep CLIP's learnable temperature in range."""
import math

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmclip.registry import HOOKS


@HOOKS.register_module()
class LogitScaleClampHook(Hook):
    """Clamp ``model.logit_scale`` (log temperature) after every step.

    Without the clamp the scale can grow until the softmax saturates and
    training becomes unstable; open_clip clamps to ``[0, ln 100]`` after each
    optimizer step (OpenAI's released training code did not: openai/CLIP#46).

    Args:
        min_value (float): Lower bound of the log scale. Defaults to 0.
        max_value (float): Upper bound. Defaults to ``ln(100)``.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 min_value: float = 0.,
                 max_value: float = math.log(100)):
        self.min_value = min_value
        self.max_value = max_value

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        scale = getattr(model, 'logit_scale', None)
        if scale is None:
            raise AttributeError(
                f'LogitScaleClampHook needs a model with `logit_scale`; '
                f'{type(model).__name__} has none. Remove the hook from '
                'custom_hooks.')
        with torch.no_grad():
            scale.clamp_(self.min_value, self.max_value)
