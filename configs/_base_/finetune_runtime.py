# Runtime for fine-tuning classifiers: the defaults plus an exponential
# moving average of the weights (mmengine's EMAHook; FT-CLIP: decay 0.9998
# per step, i.e. momentum 2e-4). Validation and testing run on the averaged
# weights, and checkpoints store them as `state_dict` (the raw weights as
# `ema_state_dict`), so tools/test.py and WiSE-FT use them too. The
# checkpoint with the best validation top-1 is kept as well.
_base_ = './default_runtime.py'
custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='EMAHook', momentum=2e-4, priority='ABOVE_NORMAL'),
]
default_hooks = dict(
    checkpoint=dict(save_best='accuracy/top1', rule='greater'))
