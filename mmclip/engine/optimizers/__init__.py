from .cpu_amp import (CPUAmpOptimWrapper, NonFiniteSkipCPUAmpOptimWrapper,
                      amp_wrapper_for_cpu, cpu_has_native_bf16)
from .layer_decay import LayerDecayOptimWrapperConstructor
from .nonfinite import (NonFiniteSkipAmpOptimWrapper,
                        NonFiniteSkipOptimWrapper, all_ranks_finite)

__all__ = [
    'CPUAmpOptimWrapper', 'LayerDecayOptimWrapperConstructor',
    'NonFiniteSkipAmpOptimWrapper',
    'NonFiniteSkipCPUAmpOptimWrapper', 'NonFiniteSkipOptimWrapper',
    'all_ranks_finite', 'amp_wrapper_for_cpu', 'cpu_has_native_bf16'
]
