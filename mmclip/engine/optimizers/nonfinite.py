"""Optimizer wrappers that skip a step whose loss is not finite."""
import torch
import torch.distributed as dist
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmclip.registry import OPTIM_WRAPPERS


def all_ranks_finite(loss: torch.Tensor) -> bool:
    """Whether ``loss`` is finite on every rank (one all-reduce when
    distributed, so all ranks take the same decision and DDP stays in
    step)."""
    flag = torch.isfinite(loss.detach()).all().to(torch.float32)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


class NonFiniteSkipMixin:
    """Skip backward and step when the loss is NaN/Inf on any rank.

    The weights stay unchanged, the gradients are cleared, and the skip is
    logged with its iteration and counted in ``self.num_skipped_steps``.
    """
    num_skipped_steps = 0

    def skip_if_nonfinite(self, loss: torch.Tensor,
                          zero_kwargs=None) -> bool:
        """Whether ``loss`` is NaN/Inf on any rank; if so, the step is
        skipped here (gradients cleared, logged, counted). Also called by
        :func:`~mmclip.models.multimodal.grad_cache.grad_cache_train_step`
        before it back-propagates any micro-batch."""
        if all_ranks_finite(loss):
            return False
        self.num_skipped_steps += 1
        self.zero_grad(**(zero_kwargs or {}))
        it = MessageHub.get_current_instance().get_info('iter', default=-1)
        MMLogger.get_current_instance().warning(
            f'Non-finite loss ({loss.detach().float().item()}) at iteration '
            f'{it + 1}: step skipped, weights unchanged '
            f'({self.num_skipped_steps} skipped so far).')
        return True

    def update_params(self, loss: torch.Tensor, step_kwargs=None,
                      zero_kwargs=None) -> None:
        if not self.skip_if_nonfinite(loss, zero_kwargs):
            super().update_params(loss, step_kwargs, zero_kwargs)


@OPTIM_WRAPPERS.register_module()
class NonFiniteSkipOptimWrapper(NonFiniteSkipMixin, OptimWrapper):
    """:class:`~mmengine.optim.OptimWrapper` that skips non-finite steps."""


@OPTIM_WRAPPERS.register_module()
class NonFiniteSkipAmpOptimWrapper(NonFiniteSkipMixin, AmpOptimWrapper):
    """:class:`~mmengine.optim.AmpOptimWrapper` (bf16/fp16 autocast) that
    skips non-finite steps.

    With ``dtype='bfloat16'`` the loss is not scaled: bf16 has float32's
    exponent range, so gradients do not underflow, and mmengine's
    ``GradScaler`` would only add a pass over every gradient (unscaling) and
    a host sync per step (its found-inf check). float16 keeps the dynamic
    loss scaling it needs.
    """

    def _scales_loss(self) -> bool:
        return self.cast_dtype is not torch.bfloat16

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        if self._scales_loss():
            return super().backward(loss, **kwargs)
        loss.backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs) -> None:
        if self._scales_loss():
            return super().step(**kwargs)
        OptimWrapper.step(self, **kwargs)  # gradient clipping included
