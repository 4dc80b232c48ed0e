"""Image <-> text retrieval recall and ranks (COCO / Flickr30k protocol).

**Tie rule (pessimistic rank).** The rank of the correct item is
``1 + (number of wrong items scoring >= the correct item)``: a wrong item that
ties with the correct one is counted as ranked before it. The rule is
deterministic and gives a lower bound on recall. open_clip's ``retrieval``
and CLIP_benchmark take ``torch.topk`` of the scores, whose order among equal
scores is implementation-defined (so their numbers with ties lie between
this pessimistic rank and the optimistic one). With continuous float scores
ties practically never happen and all rules agree.

**Many-to-one.** An image owns several captions (COCO: 5). Image -> text is
correct at rank ``r`` if ANY of the image's captions is at rank ``<= r``,
i.e. the rank is that of its best-scored caption, counting only the other
images' captions as wrong (ties among its own captions do not hurt). Text
-> image uses the single image of the caption.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from mmclip.registry import METRICS


def _retrieval_ranks(sim: torch.Tensor, txt_to_img: torch.Tensor,
                     chunk_size: int):
    """1-based pessimistic ranks: ``(N_img, )`` i2t and ``(N_txt, )`` t2i."""
    n_img, n_txt = sim.shape
    i2t = torch.empty(n_img, dtype=torch.long)
    t2i = torch.empty(n_txt, dtype=torch.long)
    # Chunks bound the memory of the boolean masks (COCO 5k x 25k would need
    # 125M entries per mask otherwise).
    for start in range(0, n_img, chunk_size):
        rows = sim[start:start + chunk_size]
        img_idx = torch.arange(start, start + rows.shape[0])
        pos = txt_to_img[None, :] == img_idx[:, None]
        best = rows.masked_fill(~pos, float('-inf')).amax(dim=1)
        i2t[start:start + rows.shape[0]] = 1 + (
            (rows >= best[:, None]) & ~pos).sum(dim=1)
    for start in range(0, n_txt, chunk_size):
        cols = sim[:, start:start + chunk_size].t()  # (chunk, N_img)
        gt = txt_to_img[start:start + chunk_size]
        gt_score = cols.gather(1, gt[:, None])
        # Counting >= includes the correct image itself: that is the 1 of
        # "1 + wrong images scoring >= it".
        t2i[start:start + cols.shape[0]] = (cols >= gt_score).sum(dim=1)
    return i2t, t2i


def retrieval_metrics(sim,
                      txt_to_img,
                      topk: Sequence[int] = (1, 5, 10),
                      chunk_size: int = 1024) -> Dict[str, float]:
    """Image -> text and text -> image recall@k and ranks of a score matrix.

    Ties are resolved pessimistically (see the module docstring).

    Args:
        sim (Tensor | np.ndarray): ``(N_img, N_txt)`` similarities, higher is
            more similar (e.g. cosine of normalised embeddings).
        txt_to_img (Tensor | np.ndarray | Sequence[int]): ``(N_txt, )`` index
            of the image (row of ``sim``) each caption belongs to. Every
            image needs at least one caption.
        topk (Sequence[int]): The ``k`` of recall@k. Defaults to
            ``(1, 5, 10)``.
        chunk_size (int): Rows / columns processed at once, to bound memory.
            Defaults to 1024.

    Returns:
        dict[str, float]: ``i2t_R@k`` and ``t2i_R@k`` in percent for each
        ``k``, ``i2t_mean_rank``, ``i2t_median_rank``, ``t2i_mean_rank``,
        ``t2i_median_rank`` (1 = best), and ``rsum`` (sum of all recalls).
    """
    sim = torch.as_tensor(np.asarray(sim) if not torch.is_tensor(sim)
                          else sim).detach().cpu()
    if not sim.is_floating_point():
        sim = sim.float()
    txt_to_img = torch.as_tensor(
        np.asarray(txt_to_img) if not torch.is_tensor(txt_to_img) else
        txt_to_img).detach().cpu().long().reshape(-1)
    if sim.ndim != 2 or sim.shape[1] != txt_to_img.numel():
        raise ValueError(
            f'sim must be (N_img, N_txt) with N_txt = len(txt_to_img) = '
            f'{txt_to_img.numel()}; got shape {tuple(sim.shape)}.')
    n_img, n_txt = sim.shape
    if n_img == 0 or n_txt == 0:
        raise ValueError('retrieval_metrics needs at least one image and '
                         'one caption.')
    if torch.isnan(sim).any():
        raise ValueError('sim contains NaN: check the embeddings.')
    if txt_to_img.min() < 0 or txt_to_img.max() >= n_img:
        raise ValueError(f'txt_to_img values must lie in [0, {n_img}).')
    missing = n_img - torch.unique(txt_to_img).numel()
    if missing:
        raise ValueError(f'{missing} images have no caption in txt_to_img; '
                         'their image -> text rank is undefined.')
    i2t, t2i = _retrieval_ranks(sim, txt_to_img, chunk_size)
    out = {}
    for name, ranks in (('i2t', i2t), ('t2i', t2i)):
        for k in topk:
            out[f'{name}_R@{k}'] = (ranks <= k).double().mean().item() * 100
    for name, ranks in (('i2t', i2t), ('t2i', t2i)):
        out[f'{name}_mean_rank'] = ranks.double().mean().item()
        # numpy's median averages the two middle values of an even count
        # (torch.median would return the lower one).
        out[f'{name}_median_rank'] = float(np.median(ranks.numpy()))
    out['rsum'] = sum(v for k, v in out.items() if '_R@' in k)
    return out


@METRICS.register_module()
class ImageTextRetrievalMetric(BaseMetric):
    """Image <-> text retrieval over the whole evaluated split.

    Expects the data samples of :class:`ImageTextRetrievalHead`: one per
    image with ``image_embed`` ``(D, )``, ``text_embeds`` ``(K, D)``,
    ``gt_text_id`` (K global caption ids) and ``image_id``, as produced for
    :class:`CocoCaptionDataset` in test mode. ``compute_metrics`` builds the
    full ``N_img x N_txt`` cosine-similarity matrix (embeddings are
    normalised by the head) and calls :func:`retrieval_metrics`; see the
    module docstring for the tie and many-to-one rules.

    In distributed evaluation mmengine gathers the per-rank results and
    truncates the sampler's padding before ``compute_metrics``; samples
    repeated anyway (same ``image_id``) are counted once.

    Args:
        topk (Sequence[int]): The ``k`` of recall@k. Defaults to
            ``(1, 5, 10)``.
        chunk_size (int): See :func:`retrieval_metrics`. Defaults to 1024.
        collect_device (str): ``'cpu'`` or ``'gpu'``, where results are
            gathered across ranks. Defaults to ``'cpu'``.
        prefix (str, optional): Metric-name prefix. Defaults to
            ``'retrieval'``.
    """
    default_prefix: Optional[str] = 'retrieval'

    def __init__(self,
                 topk: Sequence[int] = (1, 5, 10),
                 chunk_size: int = 1024,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(topk)
        self.chunk_size = chunk_size

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each image's embeddings and ids (on CPU)."""
        for ds in data_samples:
            for key in ('image_embed', 'text_embeds'):
                if key not in ds:
                    raise KeyError(
                        f'ImageTextRetrievalMetric needs {key!r} in the '
                        "predictions: use predict_head=dict(type="
                        "'ImageTextRetrievalHead') in the model config.")
            text = torch.as_tensor(ds['text_embeds']).detach().cpu()
            text = text.reshape(-1, text.shape[-1])
            ids = ds.get('gt_text_id')
            self.results.append(
                dict(
                    image_embed=torch.as_tensor(
                        ds['image_embed']).detach().cpu().reshape(-1),
                    text_embeds=text,
                    gt_text_id=None if ids is None else torch.as_tensor(
                        ids).reshape(-1).long().cpu(),
                    image_id=ds.get('image_id')))

    @staticmethod
    def _assemble(results: List[dict]):
        """Stack the per-image results into (images, texts, txt_to_img)."""
        seen, kept = set(), []
        for res in results:
            key = res['image_id']
            if key is not None:
                key = int(key)
                if key in seen:
                    continue  # a padded duplicate: count each image once
                seen.add(key)
            kept.append(res)
        images = torch.stack([r['image_embed'] for r in kept]).float()
        texts, txt_img, txt_ids = [], [], []
        next_id = 0
        for row, res in enumerate(kept):
            k = res['text_embeds'].shape[0]
            ids = res['gt_text_id']
            if ids is None:  # no global ids: number captions in order
                ids = torch.arange(next_id, next_id + k)
            if ids.numel() != k:
                raise ValueError(f'Image {res["image_id"]}: {k} caption '
                                 f'embeddings but {ids.numel()} gt_text_id.')
            next_id = max(next_id, int(ids.max()) + 1) if k else next_id
            texts.append(res['text_embeds'].float())
            txt_img.append(torch.full((k, ), row, dtype=torch.long))
            txt_ids.append(ids)
        txt_ids = torch.cat(txt_ids)
        if torch.unique(txt_ids).numel() != txt_ids.numel():
            raise ValueError('gt_text_id repeats across images: caption '
                             'ids must be unique over the dataset.')
        order = torch.argsort(txt_ids)  # caption columns in gt_text_id order
        return (images, torch.cat(texts)[order], torch.cat(txt_img)[order])

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Recall@k and ranks of the gathered results.

        Returns:
            dict[str, float]: See :func:`retrieval_metrics`.
        """
        images, texts, txt_to_img = self._assemble(results)
        sim = images @ texts.t()
        return retrieval_metrics(sim, txt_to_img, self.topk, self.chunk_size)
