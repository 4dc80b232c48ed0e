"""Layer-wise learning-rate decay that also honours ``lr_mult``."""
from typing import List

from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from torch import nn

from mmclip.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` (same
    ``paramwise_cfg``: ``layer_decay_rate``, ``*_decay_mult``,
    ``custom_keys``) where a custom key's ``lr_mult`` multiplies the
    parameter's layer-decayed learning rate.

    mmpretrain's constructor leaves ``lr_mult`` out ("disabled in this
    constructor"): it stays in the parameter group, where no optimizer or
    scheduler reads it, so a config asking for a faster head trains it at
    the plain rate without a word. Here::

        paramwise_cfg=dict(
            layer_decay_rate=0.75,
            custom_keys={'head.': dict(lr_mult=10.)})

    trains the classifier head at 10x the base learning rate and block
    ``i`` of ``L`` at ``0.75 ** (L - i)`` of it, as before. The schedulers
    scale every group from its own starting learning rate, so the ratio
    holds through warm-up and decay.
    """

    def add_params(self, params: List[dict], module: nn.Module,
                   prefix: str = '', **kwargs) -> None:
        """Add ``module``'s parameters as the parent does, then (once, for
        the whole model) scale the learning rate of groups with
        ``lr_mult``."""
        super().add_params(params, module, prefix=prefix, **kwargs)
        if prefix:  # a recursive call on a child module
            return
        custom_keys = self.paramwise_cfg.get('custom_keys', {})
        # The parent's matching rule: the longest key in the name wins.
        keys = sorted(sorted(custom_keys), key=len, reverse=True)
        for group in params:
            group.pop('lr_mult', None)  # copied there, read by nothing
            key = next((k for k in keys if k in group['param_name']), None)
            mult = custom_keys[key].get('lr_mult', 1.) if key else 1.
            group['lr'] *= mult
            group['lr_scale'] *= mult
