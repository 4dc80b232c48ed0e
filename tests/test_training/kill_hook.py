"""A hook that SIGKILLs its own training process at a given iteration, so a
test can interrupt a run the way a crash or pre-emption does."""
import os
import signal

from mmengine.hooks import Hook

from mmclip.registry import HOOKS


@HOOKS.register_module()
class KillAtIterHook(Hook):

    def __init__(self, at_iter: int):
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at_iter:
            os.kill(os.getpid(), signal.SIGKILL)
