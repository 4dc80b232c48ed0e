"""How many threads PyTorch's CPU kernels use on a machine others share.

PyTorch starts one intra-op thread per core. On a quiet machine that is the
fastest choice, but every parallel region waits for its slowest thread: when
other processes keep the cores busy, a 2-thread training step on 2 shared
cores ran 4-5x slower than a 1-thread step (3-4 s against 0.7 s per step of
the digits pretraining). So mmclip sizes the pool to the cores that the
*other* processes leave free:

    free cores = usable cores - (1-minute load average - this process's own
                 CPU use over the same time)

rounded, at least 1 and at most the cap (the usable cores, or
``OMP_NUM_THREADS`` when the user set it, as ``tools/dist_train.sh`` does).
:func:`configure_threads` applies it when a tool starts;
:class:`~mmclip.engine.hooks.CPUThreadsHook` re-checks it while a run goes
on and warns when iterations become far slower than they were.
"""
import os
import time
from typing import Optional, Union

import torch

__all__ = [
    'usable_cpus', 'thread_cap', 'machine_load', 'choose_num_threads',
    'configure_threads', 'CPUUseMeter'
]


def usable_cpus() -> int:
    """The cores this process may run on (its CPU affinity: containers and
    ``taskset`` limit it), else the machine's count."""
    if hasattr(os, 'sched_getaffinity'):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def thread_cap() -> int:
    """The most threads mmclip gives PyTorch: the usable cores, or fewer
    when ``OMP_NUM_THREADS`` says so (the user's, or one per process set by
    the multi-process launchers)."""
    cap = usable_cpus()
    try:
        return max(1, min(cap, int(os.environ['OMP_NUM_THREADS'])))
    except (KeyError, ValueError):
        return cap


def machine_load() -> Optional[float]:
    """The 1-minute load average (runnable threads of the whole machine),
    or None where the platform has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def choose_num_threads(load: Optional[float],
                       own_use: float = 0.,
                       cpus: Optional[int] = None,
                       cap: Optional[int] = None) -> int:
    """Threads for the cores that other processes leave free.

    Args:
        load (float, optional): The machine's 1-minute load average; None
            (unknown) gives ``cap``.
        own_use (float): Cores this process kept busy over the last minute
            (part of ``load``). Defaults to 0 (a process that is starting).
        cpus (int, optional): Usable cores. Defaults to :func:`usable_cpus`.
        cap (int, optional): The most threads. Defaults to
            :func:`thread_cap`.

    Returns:
        int: Between 1 and ``cap``.
    """
    cpus = usable_cpus() if cpus is None else cpus
    cap = thread_cap() if cap is None else cap
    if load is None:
        return cap
    others = max(0., load - own_use)
    return max(1, min(cap, int(cpus - others + 0.5)))


def configure_threads(threads: Union[int, str, None] = 'auto') -> int:
    """Set PyTorch's intra-op threads for this process.

    Args:
        threads (int | str | None): A number of threads, or ``'auto'`` (and
            None) for :func:`choose_num_threads` of the current load.
            Defaults to ``'auto'``.

    Returns:
        int: The threads now in use.

    Raises:
        ValueError: For anything but a positive number or ``'auto'``.
    """
    if threads in (None, 'auto'):
        threads = choose_num_threads(machine_load())
    else:
        try:
            threads = int(threads)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ValueError(f"threads must be a positive number or 'auto', "
                             f'got {threads!r}.')
    torch.set_num_threads(threads)
    return threads


class CPUUseMeter:
    """This process's CPU use (cores kept busy, all its threads together)
    since the previous reading."""

    def __init__(self):
        self._cpu, self._wall = time.process_time(), time.monotonic()

    def read(self) -> float:
        """Cores used on average since the last call (or creation)."""
        cpu, wall = time.process_time(), time.monotonic()
        used = (cpu - self._cpu) / max(wall - self._wall, 1e-6)
        self._cpu, self._wall = cpu, wall
        return used
