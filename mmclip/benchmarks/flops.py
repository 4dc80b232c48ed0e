"""Model FLOPs and MFU of the benchmark rows (``tools/benchmarks/``).

MFU (model FLOPs utilisation) = FLOPs the model needs per call x calls/s /
the device's dense bf16 peak. The FLOPs are counted from each library's
own model with :class:`torch.utils.flop_counter.FlopCounterMode`, so a
library that skips work (mmclip trims the padded tail of the text) is
charged only the work it does.
"""
from typing import Callable, Optional

import torch

# Dense (no structured sparsity) bf16 Tensor Core peaks in TFLOP/s, from
# NVIDIA's datasheets, which print twice these figures "with sparsity":
# A100 Tensor Core GPU datasheet (SXM4 and PCIe: 312); H100 Tensor Core GPU
# datasheet (SXM5: 989, NVL: 835, PCIe: 756); H200 Tensor Core GPU datasheet
# (SXM: 989, NVL: 835). First matching substring of the CUDA device name
# wins, so the NVL/PCIe variants come before their SXM siblings.
DENSE_BF16_PEAK_TFLOPS = (
    ('H200 NVL', 835.),
    ('H200', 989.),
    ('H100 NVL', 835.),
    ('H100 PCIe', 756.),
    ('H100', 989.),
    ('A100', 312.),
)


def peak_tflops(device: str,
                override: Optional[float] = None) -> Optional[float]:
    """Dense bf16 peak of ``device`` in TFLOP/s.

    Args:
        device (str): ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        override (float, optional): A peak given on the command line, for
            devices outside :data:`DENSE_BF16_PEAK_TFLOPS` (CPUs included).
            Defaults to None.

    Returns:
        float | None: The peak, None when unknown (MFU is then not shown).
    """
    if override:
        return float(override)
    if not device.startswith('cuda'):
        return None
    name = torch.cuda.get_device_name(torch.device(device)).lower()
    for key, tflops in DENSE_BF16_PEAK_TFLOPS:
        if key.lower() in name:
            return tflops
    return None


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (2 per multiply-add) of one call of ``fn``, as
    :class:`~torch.utils.flop_counter.FlopCounterMode` counts them.

    Counted with grad mode on and SDPA's math backend, so attention runs as
    countable matrix products in every library: fused kernels such as
    ``nn.MultiheadAttention``'s inference fast path (open_clip) or SDPA's CPU
    flash kernel are not in the counter's table and would count as zero.
    Under ``torch.inference_mode`` no graph is kept. A ``fn`` that calls
    ``backward`` is charged its backward FLOPs too.

    Args:
        fn (callable): The work of one call, without arguments.

    Returns:
        int: Total FLOPs.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), \
            FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def flops_row(rates: dict, flops: dict, items_per_call: int,
              peak: Optional[float]) -> dict:
    """MFU in % of ``peak`` (or, without a peak, achieved GFLOP/s) per
    library from its rate (items/s) and FLOPs per call.

    Args:
        rates (dict): ``{library: items/s or None}``.
        flops (dict): ``{library: FLOPs of one call of items_per_call}``.
        items_per_call (int): Items (images, texts, samples) per call.
        peak (float, optional): Dense bf16 peak in TFLOP/s.

    Returns:
        dict: ``{library: value or None}``.
    """
    row = {}
    for name, rate in rates.items():
        if not rate or not flops.get(name):
            row[name] = None
            continue
        achieved = flops[name] / items_per_call * rate  # FLOP/s
        row[name] = 100 * achieved / (peak * 1e12) if peak else achieved / 1e9
    return row


def flops_row_name(row: str, peak: Optional[float]) -> str:
    """Name of the row :func:`flops_row` fills for ``row``."""
    base = row.split(' (')[0]
    if peak:
        return f'{base}: MFU (% of {peak:g} TFLOP/s bf16)'
    return f'{base}: achieved GFLOP/s'
