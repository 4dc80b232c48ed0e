"""Keep a CPU run's threads fitted to a shared machine, and say when it
slows down."""
import statistics
import time
from collections import deque
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import MMLogger

from mmclip.registry import HOOKS
from ..threads import (CPUUseMeter, choose_num_threads, machine_load,
                       usable_cpus)


@HOOKS.register_module()
class CPUThreadsHook(Hook):
    """Fit PyTorch's threads to the cores other processes leave free while
    a run goes on, and warn when iterations become far slower than before.

    Every ``interval`` seconds of a training, validation or test loop the
    hook reads the machine's load and sets the threads with
    :func:`~mmclip.engine.threads.choose_num_threads` (fewer when other work
    starts, more again when it ends; see :mod:`mmclip.engine.threads`),
    unless the threads were fixed (``adapt=False``, ``--threads N``). Runs
    on a GPU are left alone.

    It also times the training iterations: when the median of the last
    ``window`` is ``slow_factor`` times the fastest such median of the run,
    it logs one warning with the machine's load and what to set, and again
    only after the pace recovered or ``warn_every`` seconds passed.

    Args:
        adapt (bool): Change the threads with the load. Defaults to True.
        interval (float): Seconds between two load readings. Defaults to 30.
        window (int): Iterations per median. Defaults to 10.
        slow_factor (float): Slow-down that warns. Defaults to 3.
        warn_every (float): Seconds between two warnings of a lasting
            slow-down. Defaults to 600.
    """
    priority = 'VERY_LOW'

    def __init__(self,
                 adapt: bool = True,
                 interval: float = 30.,
                 window: int = 10,
                 slow_factor: float = 3.,
                 warn_every: float = 600.):
        self.adapt = adapt
        self.interval = interval
        self.slow_factor = slow_factor
        self.warn_every = warn_every
        self._times = deque(maxlen=window)
        self._best: Optional[float] = None
        self._last_warning: Optional[float] = None
        self._tick: Optional[float] = None
        self._next_check = 0.
        self._meter = CPUUseMeter()
        self._active = False

    def before_run(self, runner) -> None:
        device = next(iter(runner.model.parameters()), torch.empty(0)).device
        self._active = device.type == 'cpu'
        self._next_check = time.monotonic() + self.interval
        self._meter = CPUUseMeter()
        if self._active:
            how = (f'fitted to the load, re-checked every {self.interval:g} '
                   's' if self.adapt else 'fixed')
            MMLogger.get_current_instance().info(
                f'{torch.get_num_threads()} PyTorch threads on '
                f'{usable_cpus()} CPUs ({how}).')

    def _refit(self) -> None:
        """Re-read the load and set the threads (every ``interval`` s)."""
        now = time.monotonic()
        if not (self._active and self.adapt) or now < self._next_check:
            return
        self._next_check = now + self.interval
        threads = choose_num_threads(machine_load(), self._meter.read())
        if threads != torch.get_num_threads():
            MMLogger.get_current_instance().info(
                f'Load {machine_load():.1f} on {usable_cpus()} CPUs: '
                f'{threads} PyTorch threads instead of '
                f'{torch.get_num_threads()}.')
            torch.set_num_threads(threads)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._tick = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self._tick is not None:
            self.record_iteration(runner, time.perf_counter() - self._tick)
        self._refit()

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        self._refit()

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        self._refit()

    def record_iteration(self, runner, seconds: float) -> None:
        """Add a training iteration's duration; warn on a slow-down."""
        self._times.append(seconds)
        if len(self._times) < self._times.maxlen:
            return
        pace = statistics.median(self._times)
        if self._best is None or pace < self._best:
            self._best = pace
        now = time.monotonic()
        if pace < self.slow_factor * self._best:
            self._last_warning = None  # recovered: warn again next time
            return
        if (self._last_warning is not None
                and now - self._last_warning < self.warn_every):
            return
        self._last_warning = now
        load = machine_load()
        busy = (f' The machine is busy: load {load:.1f} on '
                f'{usable_cpus()} CPUs.' if load is not None else '')
        threads = torch.get_num_threads()
        advice = ('where other jobs keep the cores busy, start with '
                  '--threads 1 (or OMP_NUM_THREADS=1)' if threads > 1 else
                  'it already runs 1 PyTorch thread; other jobs are taking '
                  'the cores')
        MMLogger.get_current_instance().warning(
            f'Iteration {runner.iter + 1}: {pace:.2f} s per iteration, '
            f'{pace / self._best:.1f}x slower than the {self._best:.2f} s '
            f'earlier in this run.{busy} This run uses {threads} thread(s): '
            f'{advice}.')
