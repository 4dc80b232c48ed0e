"""DDP and FSDP wrappers that let a model with ``accum_steps > 1`` run its
own training step.

mmengine's ``MMDistributedDataParallel`` and ``MMFullyShardedDataParallel``
implement ``train_step`` themselves (one forward of the whole batch through
the wrapper, then ``update_params``) and never call the model's. A
:class:`~mmclip.models.CLIPModel` with ``accum_steps > 1`` embeds its batch
in micro-batches and back-propagates each one
(:mod:`~mmclip.models.multimodal.grad_cache`); under these wrappers its
``train_step`` runs with every forward going through the wrapper, so DDP
all-reduces the gradients (once, after the last micro-batch) and FSDP
gathers the sharded parameters. With ``accum_steps=1`` (or a model without
it) they are mmengine's wrappers unchanged. :func:`mmclip.engine.
build_runner` puts them in place of mmengine's when the model accumulates.

They are registered in mmengine's own ``MODEL_WRAPPERS``, not in mmclip's
child registry: ``Runner.wrap_model`` looks the wrapper type up in
mmengine's registry, which finds neither the names of a grandchild registry
nor an ``mmclip.`` scope (it reaches only its direct children, e.g.
mmpretrain's). The names are new there, so nothing of mmengine's changes.
"""
import torch.nn as nn
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

try:
    from mmengine.model import MMFullyShardedDataParallel
except ImportError:  # torch without FSDP
    MMFullyShardedDataParallel = None


class AccumulatingTrainStepMixin:
    """``train_step`` of the wrapped model when it accumulates."""

    def train_step(self, data, optim_wrapper):
        module: nn.Module = self.module
        if getattr(module, 'accum_steps', 1) > 1:
            return module.train_step(data, optim_wrapper,
                                     forward_module=self)
        return super().train_step(data, optim_wrapper)


@MODEL_WRAPPERS.register_module()
class AccumulatingDistributedDataParallel(AccumulatingTrainStepMixin,
                                          MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` that runs the training step
    of a model with ``accum_steps > 1`` (see the module docstring); same
    arguments."""


#: mmengine's wrapper type -> the accumulating one.
ACCUMULATING_WRAPPERS = {
    'MMDistributedDataParallel': 'AccumulatingDistributedDataParallel'
}

if MMFullyShardedDataParallel is not None:

    @MODEL_WRAPPERS.register_module()
    class AccumulatingFullyShardedDataParallel(AccumulatingTrainStepMixin,
                                               MMFullyShardedDataParallel):
        """mmengine's ``MMFullyShardedDataParallel`` that runs the training
        step of a model with ``accum_steps > 1`` (see the module
        docstring); same arguments. FSDP's ``no_sync`` keeps unsharded
        gradients between micro-batches."""

    ACCUMULATING_WRAPPERS['MMFullyShardedDataParallel'] = (
        'AccumulatingFullyShardedDataParallel')
else:
    AccumulatingFullyShardedDataParallel = None
