from .nonfinite import (NonFiniteSkipAmpOptimWrapper,
                        NonFiniteSkipOptimWrapper, all_ranks_finite)

__all__ = [
    'NonFiniteSkipAmpOptimWrapper', 'NonFiniteSkipOptimWrapper',
    'all_ranks_finite'
]
