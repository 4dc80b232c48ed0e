from .accumulating import (ACCUMULATING_WRAPPERS,
                           AccumulatingDistributedDataParallel,
                           AccumulatingFullyShardedDataParallel)

__all__ = [
    'ACCUMULATING_WRAPPERS', 'AccumulatingDistributedDataParallel',
    'AccumulatingFullyShardedDataParallel'
]
