"""Zero-shot image-text retrieval in the suite: clip_benchmark's retrieval
exports and its recall@k.

An export (``clip_benchmark_export_wds`` of a captioned dataset) holds
``dataset_type.txt`` saying ``retrieval`` and shards whose samples are an
image and a ``.txt`` with its captions, one per line. clip_benchmark's
``zeroshot_retrieval.evaluate`` scores every caption against every image
and counts a query when any of its true matches is among its ``k`` best:
``image_retrieval_recall@k`` (captions finding their image) and
``text_retrieval_recall@k`` (images finding one of their captions), as
fractions. mmclip's :func:`~mmclip.evaluation.retrieval_metrics` adds its
R@1/5/10 and ranks (in %, ties counted against the query). COCO's and
Flickr30k's Karpathy test splits are also read as mmclip's retrieval
configs read them (:func:`read_coco_captions`).
"""
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics.retrieval import retrieval_metrics
from .catalog import RETRIEVAL

#: The ``k`` of the reported recall@k.
RECALL_KS = (1, 5, 10)


def wds_retrieval_samples(shards: List[str], read_errors: List[str],
                          captions: Dict[int, List[str]]):
    """``(key, image, ordinal)`` of a retrieval export's samples; the
    captions of each go to ``captions[ordinal]``."""
    from .readers import wds_samples
    for ordinal, (key, image, text) in enumerate(
            wds_samples(shards, read_errors, 'txt')):
        captions[ordinal] = [c for c in text.decode().splitlines() if c]
        yield key, image, ordinal


def read_coco_captions(spec, folder: str):
    """A retrieval split in COCO's captions layout (the Karpathy test
    splits of ``configs/_base_/datasets/*_retrieval.py``), read by
    :class:`mmclip.datasets.CocoCaptionDataset` as those configs read it.

    Args:
        spec (SuiteDataset): Its ``annotations`` and ``image_prefix``.
        folder (str): The dataset's root (the configs' ``data_root``).

    Returns:
        SuiteData: One sample per image, its captions in ``captions``.
    """
    from mmclip.datasets import CocoCaptionDataset
    from .readers import SuiteData

    # lazy_init: the entries are read once, here, without a pipeline.
    entries = CocoCaptionDataset(
        ann_file=spec.annotations, data_root=folder,
        data_prefix=dict(img_path=spec.image_prefix), test_mode=True,
        lazy_init=True).load_data_list()
    paths = [entry['img_path'] for entry in entries]
    return SuiteData(
        spec.name, folder, (), (),
        samples=lambda: ((osp.relpath(p, folder), p, ordinal)
                         for ordinal, p in enumerate(paths)),
        files=[osp.join(folder, spec.annotations)] + paths, task=RETRIEVAL,
        captions={i: list(entry['text']) for i, entry in enumerate(entries)})


def recall_at_k(scores: torch.Tensor, true_match: torch.Tensor,
                ks: Sequence[int] = RECALL_KS) -> Dict[int, float]:
    """Fraction of queries with a true match among their ``k`` best.

    Args:
        scores (Tensor): ``(Q, N)`` query-candidate similarities.
        true_match (Tensor): ``(Q, N)`` bool, the true pairs.
        ks (Sequence[int]): Defaults to ``(1, 5, 10)`` (``k`` capped at
            ``N``).

    Returns:
        dict: ``{k: fraction}``, a float32 mean as clip_benchmark's.
    """
    ranked = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    found = true_match.gather(1, ranked)
    return {k: found[:, :k].any(dim=1).float().mean().item() for k in ks}


def retrieval_scores(image_features: np.ndarray,
                     captions: Sequence[Sequence[str]],
                     embed_text) -> Dict[str, float]:
    """clip_benchmark's and mmclip's retrieval metrics.

    Args:
        image_features (np.ndarray): ``(N, D)`` image embeddings.
        captions (Sequence[Sequence[str]]): Each image's captions.
        embed_text (callable): ``list of str -> (T, D)`` embeddings.

    Returns:
        dict: ``image_retrieval_recall@k`` and ``text_retrieval_recall@k``
        (fractions) for k in :data:`RECALL_KS`, and mmclip's
        ``i2t_R@k``, ``t2i_R@k``, ranks and ``rsum`` (in %).
    """
    texts = [c for caps in captions for c in caps]
    owner = torch.tensor([i for i, caps in enumerate(captions)
                          for _ in caps])
    with torch.no_grad():
        text = torch.cat([
            F.normalize(embed_text(texts[i:i + 256]).float().cpu(), dim=-1)
            for i in range(0, len(texts), 256)
        ])
    image = F.normalize(torch.from_numpy(image_features).float(), dim=-1)
    scores = text @ image.t()
    true_match = owner[:, None] == torch.arange(len(image))[None]
    metrics = {}
    for k, value in recall_at_k(scores, true_match).items():
        metrics[f'image_retrieval_recall@{k}'] = value
    for k, value in recall_at_k(scores.t(), true_match.t()).items():
        metrics[f'text_retrieval_recall@{k}'] = value
    metrics.update(retrieval_metrics(scores.t(), owner))
    return metrics
