"""The accumulation table of ``tools/benchmarks/benchmark.py`` (``--rows
accum``): what ``model.accum_steps`` saves and costs.

One training step of mmclip's CLIP through its ``train_step`` (data
preprocessor, ``CLIPContrastiveHead``, AdamW in an mmengine optim wrapper;
bf16 autocast with ``--dtype bf16``) in three settings: one batch of ``B``
(``--train-batch``), ``K x B`` accumulated (``accum_steps=K``,
``--accum-steps``: the loss of ``K x B``), and one batch of ``K x B``.

Each setting runs in a fresh process, so one setting's peak cannot hide
another's: a warm-up step (optimizer state, allocator caches), the timed
steps, then one step whose peak memory above what is resident before it
(the weights and optimizer state) is measured: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the peak resident set size
(``VmHWM``, reset through ``/proc/self/clear_refs``; Linux with glibc).
PyTorch's CPU tensors come from ``malloc``, which keeps freed memory
resident and reuses it in pieces, so for that step glibc serves every block
over 128 KiB with its own ``mmap`` (returned to the system when freed) and
first trims what the earlier steps left: the resident set then follows the
live tensors.
"""
import ctypes
import ctypes.util
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Tuple

import torch

from .peers import ARCHS, make_prompts, mmclip_arch_options
from .timing import device_sync


def settings(batch: int, accum_steps: int) -> List[Tuple[str, int, int]]:
    """``(label, batch size, accum_steps)`` of the three settings."""
    big = batch * accum_steps
    return [(f'one batch of {batch}', batch, 1),
            (f'{accum_steps} x {batch} accumulated (accum_steps='
             f'{accum_steps})', big, accum_steps),
            (f'one batch of {big}', big, 1)]


def status_bytes(field: str) -> int:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024  # kB
    raise OSError(f'/proc/self/status has no {field}')


#: glibc's ``mallopt`` parameter: the size from which ``malloc`` maps
#: blocks of their own.
M_MMAP_THRESHOLD = -3


class PeakMemory:
    """Peak memory of a block above what is resident when it starts:
    CUDA's allocator statistics, or the CPU process's resident set (whose
    ``malloc`` then maps every block over 128 KiB of its own, see the module
    docstring)."""

    def __init__(self, device: str):
        self.cuda = device.startswith('cuda')

    def start(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            libc = ctypes.CDLL(ctypes.util.find_library('c'))
            libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
            libc.malloc_trim(0)
            self.base = status_bytes('VmRSS')
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # VmHWM := VmRSS

    def peak_bytes(self) -> int:
        peak = (torch.cuda.max_memory_allocated()
                if self.cuda else status_bytes('VmHWM'))
        return peak - self.base


def synthetic_batch(model, size: int, px: int) -> dict:
    """A dataloader's batch for ``model.train_step``: uint8 images and
    tokenized prompts."""
    from mmpretrain.structures import DataSample
    ids = model.tokenizer(make_prompts(size))
    samples = []
    for row in ids:
        sample = DataSample()
        sample.set_field(row, 'text_ids')
        samples.append(sample)
    images = torch.randint(0, 256, (size, 3, px, px), dtype=torch.uint8)
    return dict(inputs=images, data_samples=samples)


def measure_step(arch: str, device: str, batch: int, accum_steps: int,
                 bf16: bool, repeats: int, threads: int) -> Dict[str, float]:
    """Step peak memory (bytes) and samples/s (best of ``repeats``) of one
    setting; meant to run alone in its process (:func:`run_isolated`)."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    from mmclip.apis import get_model
    from mmclip.engine.optimizers import CPUAmpOptimWrapper
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = get_model('clip_vit-base-p32', device=device, cfg_options={
        **mmclip_arch_options(arch),
        'model.head': dict(type='CLIPContrastiveHead'),
        'model.accum_steps': accum_steps}).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    if not bf16:
        wrapper = OptimWrapper(optimizer)
    elif device.startswith('cuda'):
        wrapper = AmpOptimWrapper(dtype='bfloat16', optimizer=optimizer)
    else:
        wrapper = CPUAmpOptimWrapper(cpu_bf16=True, optimizer=optimizer)
    data = synthetic_batch(model, batch, ARCHS[arch][0][4])
    sync = device_sync(device)
    model.train_step(data, wrapper)  # warm-up: optimizer state, caches
    sync()
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        model.train_step(data, wrapper)
        sync()
        best = min(best, time.perf_counter() - start)
    memory = PeakMemory(device)
    memory.start()
    model.train_step(data, wrapper)
    sync()
    return dict(peak_bytes=memory.peak_bytes(), samples_per_s=batch / best)


def run_isolated(fn, *args):
    """``fn(*args)`` in a fresh (spawned) process; its return value."""
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def measure_accumulation(args) -> Dict[str, Dict[str, float]]:
    """Every setting of :func:`settings`, each in its own process.

    Args:
        args (Namespace): ``arch``, ``device``, ``dtype``, ``train_batch``,
            ``accum_steps``, ``repeats`` of ``tools/benchmarks/benchmark.py``.

    Returns:
        dict: ``{label: dict(batch, micro_batch, peak_bytes,
        samples_per_s)}``.
    """
    results = {}
    for label, batch, steps in settings(args.train_batch, args.accum_steps):
        results[label] = dict(
            batch=batch, micro_batch=batch // steps,
            **run_isolated(measure_step, args.arch, args.device, batch, steps,
                           args.dtype == 'bf16', args.repeats,
                           torch.get_num_threads()))
    return results


def format_accumulation_table(results: Dict[str, Dict[str, float]],
                              device: str) -> str:
    """The accumulation settings as their own markdown table."""
    memory = ('peak allocated' if device.startswith('cuda') else
              'peak RSS')
    lines = [f'| train step | batch of the loss | samples per forward | '
             f'{memory} of the step (MiB) | samples/s |',
             '|---|---|---|---|---|']
    for label, row in results.items():
        lines.append(
            f'| {label} | {row["batch"]} | {row["micro_batch"]} | '
            f'{row["peak_bytes"] / 2**20:,.0f} | '
            f'{row["samples_per_s"]:,.1f} |')
    return '\n'.join(lines)
