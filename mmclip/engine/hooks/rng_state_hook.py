"""Save and restore random number generator states with checkpoints."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmclip.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Put Python, numpy and torch RNG states into every checkpoint and
    restore them on resume.

    mmengine re-seeds a resumed run with the original seed, so the resumed
    run would replay the *first* epoch's random augmentations (and dropout,
    patch dropout) instead of continuing the sequence. With this hook a run
    resumed from an epoch checkpoint reproduces the uninterrupted run's loss
    sequence (on CPU, same seed and worker count).

    The states are saved as plain data (numpy's key array as a tensor), so
    the checkpoint still loads with ``torch.load(weights_only=True)``.
    """
    priority = 'VERY_LOW'  # restore after everything else has re-seeded

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
        state = dict(
            python=random.getstate(),
            numpy=dict(bit_generator=name,
                       keys=torch.from_numpy(keys.astype(np.int64)),
                       pos=int(pos), has_gauss=int(has_gauss),
                       cached_gaussian=float(cached_gaussian)),
            torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if state is None:
            runner.logger.warning(
                'The checkpoint has no RNG state (saved without '
                'RNGStateHook); the resumed run is not bit-reproducible.')
            return
        random.setstate(state['python'])
        numpy_state = state['numpy']
        np.random.set_state(
            (numpy_state['bit_generator'],
             numpy_state['keys'].numpy().astype(np.uint32),
             numpy_state['pos'], numpy_state['has_gauss'],
             numpy_state['cached_gaussian']))
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
