"""Log a step's scalars without a host sync per step."""
from typing import List, Optional, Tuple

import torch
from mmengine.hooks import CheckpointHook, LoggerHook, RuntimeInfoHook

from mmclip.registry import HOOKS


@HOOKS.register_module()
class DeferredRuntimeInfoHook(RuntimeInfoHook):
    """mmengine's ``RuntimeInfoHook`` that hands the training step's logged
    tensors (loss, temperature, accuracies) to the message hub in batches.

    mmengine's hook calls ``.item()`` on every logged tensor of every
    iteration: a host sync that makes the CPU wait for the GPU to finish the
    step before it may fetch, copy and launch the next one, so the GPU idles
    through that work. This hook keeps the tensors (detached, on their
    device) and copies them to the host with one transfer when something
    reads them: at the iterations where a ``LoggerHook`` logs or an
    iteration-based ``CheckpointHook`` saves (the message hub goes into the
    checkpoint), at the end of every epoch and of training, and at least
    every ``max_pending`` iterations. The message hub then holds the same
    values, in the same order, as with mmengine's hook.

    Replace mmengine's hook in a config with ``default_hooks =
    dict(runtime_info=dict(type='DeferredRuntimeInfoHook'))``.

    Args:
        max_pending (int): Iterations kept at most before a transfer.
            Defaults to 1000.
    """

    def __init__(self, max_pending: int = 1000):
        super().__init__()
        self.max_pending = max_pending
        self._pending: List[List[Tuple[str, object]]] = []
        # Set in before_train from the runner's hooks: the intervals at
        # which a LoggerHook logs and an iteration-based CheckpointHook
        # saves (both read the message hub).
        self._log_intervals: List[int] = []
        self._save_intervals: List[int] = []

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._log_intervals = [
            hook.interval for hook in runner.hooks
            if isinstance(hook, LoggerHook)
        ]
        self._save_intervals = [
            hook.interval for hook in runner.hooks
            if isinstance(hook, CheckpointHook) and not hook.by_epoch
        ]

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if outputs is not None:
            self._pending.append([
                (key, value.detach() if torch.is_tensor(value) else value)
                for key, value in outputs.items()
            ])
        if self._pending and self._read_now(runner, batch_idx):
            self.flush(runner)

    def after_train(self, runner) -> None:
        if self._pending:  # training stopped early (a hook, an exception)
            self.flush(runner)
        super().after_train(runner)

    def _read_now(self, runner, batch_idx: int) -> bool:
        """Whether a hook reads the logged scalars after this iteration."""
        if (len(self._pending) >= self.max_pending
                or self.is_last_train_iter(runner)
                or self.end_of_epoch(runner.train_dataloader, batch_idx)):
            return True
        return (any(self.every_n_inner_iters(batch_idx, n)
                    or self.every_n_train_iters(runner, n)
                    for n in self._log_intervals)
                or any(self.every_n_train_iters(runner, n)
                       for n in self._save_intervals))

    def flush(self, runner) -> None:
        """Copy every pending tensor to the host at once and update the
        message hub with the pending iterations in order."""
        tensors = [value for step in self._pending for _, value in step
                   if torch.is_tensor(value)]
        if tensors:
            device = tensors[0].device
            host = iter(torch.stack([
                t.reshape(()).to(device, torch.float64) for t in tensors
            ]).tolist())
        for step in self._pending:
            for key, value in step:
                runner.message_hub.update_scalar(
                    f'train/{key}',
                    next(host) if torch.is_tensor(value) else value)
        self._pending = []
