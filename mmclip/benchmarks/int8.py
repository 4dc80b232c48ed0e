"""The int8 image tower measured against float32: its encode rate next to
open_clip's and mmclip's float32 PyTorch on the same batch and threads
(the benchmark's ``int8`` row), and how closely its embeddings and search
results follow float32's (cosine per image, recall@k of top-k search)."""
import tempfile
from functools import partial
from typing import Dict

import numpy as np
import torch

from mmclip.search import topk_overlap
from .peers import build_models
from .timing import best_rates

#: The columns of the int8 row, the int8 tower first.
INT8_COLUMNS = ('mmclip int8 (ONNX Runtime)', 'open_clip fp32',
                'mmclip fp32')


def measure_int8_image_encode(arch: str, image_batch: int,
                              repeats: int) -> Dict[str, float]:
    """Images/s of mmclip's int8 image tower (ONNX Runtime, as many threads
    as torch), open_clip's and mmclip's float32 image encode (PyTorch
    eager), the same random images, interleaved as every row. The int8
    tower is :func:`mmclip.deployment.quantize_image_tower`'s default
    (dynamic) quantisation of the exported mmclip model.

    Args:
        arch (str): A key of :data:`mmclip.benchmarks.peers.ARCHS`.
        image_batch (int): Images per call.
        repeats (int): Timed rounds (:func:`best_rates`).

    Returns:
        dict: ``{column of INT8_COLUMNS: images/s}``.
    """
    from mmclip.deployment import (Int8ImageEncoder, export_onnx,
                                   quantize_image_tower)
    torch.manual_seed(0)
    models = build_models(arch, ('mmclip', 'open_clip'), 'cpu',
                          torch.float32)
    size = models['mmclip'].backbone.img_size
    images = torch.randn(image_batch, 3, size, size)
    with tempfile.TemporaryDirectory() as folder:
        export_onnx(models['mmclip'], folder, verify=False)
        quantize_image_tower(folder)
        encoder = Int8ImageEncoder(folder,
                                   num_threads=torch.get_num_threads())
        with torch.inference_mode():
            return best_rates(
                dict(zip(INT8_COLUMNS, (
                    partial(encoder.encode, images.numpy()),
                    partial(models['open_clip'].encode_image, images),
                    partial(models['mmclip'].encode_image, images)))),
                image_batch, repeats, lambda: None)


def format_int8_table(rates: Dict[str, float]) -> str:
    """The int8 row as its own markdown table, with the int8 tower's rate
    over each float32 one."""
    int8, open_clip, fp32 = (rates[name] for name in INT8_COLUMNS)
    return ('| row | ' + ' | '.join(INT8_COLUMNS) +
            ' | int8 / open_clip fp32 | int8 / mmclip fp32 |\n'
            '|---|---|---|---|---|---|\n'
            '| int8 image tower vs fp32 image encode, CPU (img/s) | '
            f'{int8:,.1f} | {open_clip:,.1f} | {fp32:,.1f} | '
            f'{int8 / open_clip:.2f}x | {int8 / fp32:.2f}x |')


def int8_agreement(reference: np.ndarray, candidate: np.ndarray,
                   queries: Dict[str, np.ndarray],
                   k: int = 10) -> Dict[str, float]:
    """How closely int8 embeddings follow float32 ones.

    Args:
        reference (np.ndarray): ``(N, D)`` L2-normalised float32 embeddings.
        candidate (np.ndarray): ``(N, D)`` L2-normalised int8-tower ones of
            the same images.
        queries (dict): ``{name: (Q, D) queries}``, e.g. text and image
            queries.
        k (int): Results per query. Defaults to 10.

    Returns:
        dict: ``cosine min`` and ``cosine mean`` over the images, and
        ``recall@k <name>`` (:func:`topk_overlap`) per query set.
    """
    cosine = np.sum(reference * candidate, axis=1)
    result = {'cosine min': float(cosine.min()),
              'cosine mean': float(cosine.mean())}
    for name, q in queries.items():
        result[f'recall@{k} {name}'] = topk_overlap(q, reference, candidate,
                                                    k)
    return result
