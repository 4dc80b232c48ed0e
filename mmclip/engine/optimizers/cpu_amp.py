"""Mixed precision for runs without a GPU.

mmengine's ``AmpOptimWrapper`` refuses to be built without a GPU (NPU, MLU,
MUSA), so a recipe with it, or ``--amp``, dies on a laptop with an
assertion. :func:`amp_wrapper_for_cpu` swaps such a wrapper for
:class:`CPUAmpOptimWrapper` when the run has no accelerator:

- **bfloat16 autocast** where the CPU computes bf16 natively: x86 with
  AVX512-BF16 or AMX-BF16, Arm with the BF16 extension (the ``flags`` /
  ``Features`` of ``/proc/cpuinfo``). bf16 keeps float32's exponent range,
  so no loss scaling is needed.
- **float32 with one warning** elsewhere: without those instructions PyTorch
  emulates bf16 and a step runs many times slower than in float32 (about
  300x for a matmul on an AMD EPYC without AVX-512), and CPU autocast has no
  float16. ``cpu_bf16=True`` or ``False`` on the wrapper overrides the
  check.
"""
import logging
from contextlib import contextmanager
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from mmclip.registry import OPTIM_WRAPPERS
from .nonfinite import NonFiniteSkipMixin

#: CPU feature flags (``/proc/cpuinfo``) of native bf16 arithmetic.
BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16', 'bf16')


def cpu_has_native_bf16(cpuinfo: str = '/proc/cpuinfo') -> bool:
    """Whether the CPU computes bfloat16 in hardware (see
    :data:`BF16_CPU_FLAGS`); False where ``cpuinfo`` cannot be read (other
    platforms)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() in ('flags', 'Features'):
                    return any(flag in value.split()
                               for flag in BF16_CPU_FLAGS)
    except OSError:
        pass
    return False


def accelerator_available() -> bool:
    """Whether a device mmengine's ``AmpOptimWrapper`` accepts exists."""
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``AmpOptimWrapper``'s counterpart for CPU runs: bfloat16 autocast
    where the CPU has native bf16, else float32 with one warning (see the
    module docstring).

    It takes ``AmpOptimWrapper``'s arguments, so a config's wrapper can be
    swapped by type alone; a checkpoint written with a GPU's loss scaler
    resumes (the scaler's state is dropped: bf16 needs none).

    Args:
        dtype (str | torch.dtype, optional): The requested autocast dtype.
            ``'bfloat16'`` (also for None) autocasts when the CPU allows;
            ``'float16'`` runs in float32 (CPU autocast has no float16).
            Defaults to None.
        cpu_bf16 (bool, optional): Force (True) or forbid (False) bf16
            autocast; None decides with :func:`cpu_has_native_bf16`.
            Defaults to None.
        loss_scale: Accepted for ``AmpOptimWrapper`` configs; unused.
        use_fsdp (bool): Accepted for ``AmpOptimWrapper`` configs; unused.
        **kwargs: Passed to :class:`~mmengine.optim.OptimWrapper`.
    """

    def __init__(self,
                 dtype: Union[str, torch.dtype, None] = None,
                 cpu_bf16: Optional[bool] = None,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 use_fsdp: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        requested = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        native = cpu_has_native_bf16() if cpu_bf16 is None else cpu_bf16
        if requested in (None, torch.bfloat16) and native:
            self.cast_dtype = torch.bfloat16
            print_log('Mixed precision on the CPU: bfloat16 autocast.',
                      logger='current')
            return
        self.cast_dtype = None
        why = (f'CPU autocast has no {requested}' if requested not in (
            None, torch.bfloat16) else 'this CPU has no native bfloat16 '
               f'({"/".join(BF16_CPU_FLAGS)}), where bf16 runs many times '
               'slower than float32')
        print_log(
            f'Mixed precision requested without a GPU: training in float32 '
            f'because {why}.', logger='current', level=logging.WARNING)

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast(
                'cpu', dtype=torch.bfloat16,
                enabled=self.cast_dtype is not None):
            yield

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        state_dict.pop('loss_scaler', None)  # a GPU run's; bf16 needs none
        super().load_state_dict(state_dict)


@OPTIM_WRAPPERS.register_module()
class NonFiniteSkipCPUAmpOptimWrapper(NonFiniteSkipMixin, CPUAmpOptimWrapper):
    """:class:`CPUAmpOptimWrapper` that skips non-finite steps (the CPU
    counterpart of ``NonFiniteSkipAmpOptimWrapper``)."""


#: AMP wrappers that need an accelerator -> their CPU counterparts.
CPU_COUNTERPARTS = {
    'AmpOptimWrapper': 'CPUAmpOptimWrapper',
    'NonFiniteSkipAmpOptimWrapper': 'NonFiniteSkipCPUAmpOptimWrapper',
}


def amp_wrapper_for_cpu(optim_wrapper: dict) -> Optional[str]:
    """Swap an AMP wrapper config for its CPU counterpart when the run has
    no accelerator (in place); with one, drop the CPU-only ``cpu_bf16``.

    Args:
        optim_wrapper (dict): A config's ``optim_wrapper``.

    Returns:
        str | None: The type swapped out, None when nothing changed.
    """
    wrapper_type = optim_wrapper.get('type')
    if wrapper_type not in CPU_COUNTERPARTS:
        return None
    if accelerator_available():
        # cpu_bf16 only means something to the CPU counterpart.
        optim_wrapper.pop('cpu_bf16', None)
        return None
    optim_wrapper['type'] = CPU_COUNTERPARTS[wrapper_type]
    return wrapper_type
