"""The timer of every benchmark row."""
import time
from typing import Callable, Dict

import torch


def device_sync(device: str) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (CUDA runs
    asynchronously; the CPU has nothing to wait for)."""
    return torch.cuda.synchronize if device.startswith('cuda') else (
        lambda: None)


def best_rates(fns: Dict[str, Callable[[], object]], items: int, repeats: int,
               sync: Callable[[], None]) -> Dict[str, float]:
    """Best items/s per library over ``repeats`` rounds after a warm-up.

    Each round runs every library once, in turn, so slow drifts of the
    machine (other load, clocks) hit all libraries alike instead of whichever
    happens to be measured last.

    Args:
        fns (dict): ``{library: fn()}``, each doing the work of ``items``.
        items (int): Items (images, texts, samples) one call handles.
        repeats (int): Timed rounds.
        sync (callable): Waits for the device (:func:`device_sync`).

    Returns:
        dict: ``{library: items/s}``.
    """
    best = {name: float('inf') for name in fns}
    for fn in fns.values():
        fn()
    sync()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: items / t for name, t in best.items()}
