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
    """
    priority = 'VERY_LOW'  # restore after everything else has re-seeded

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(
            python=random.getstate(),
            numpy=np.random.get_state(),
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
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
