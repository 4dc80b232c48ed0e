"""Predict head that embeds images and their captions for retrieval."""
from typing import Callable, List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.structures import DataSample

from mmclip.registry import MODELS


@MODELS.register_module()
class ImageTextRetrievalHead(BaseModule):
    """Embed every image and all its captions (``mode='predict'``).

    Used as ``CLIPModel(predict_head=dict(type='ImageTextRetrievalHead'))``
    with :class:`ImageTextRetrievalMetric`. For each data sample (one image
    with K captions, as :class:`CocoCaptionDataset` gives in test mode) it
    sets, as plain CPU tensors:

    - ``image_embed``: ``(D, )`` image embedding;
    - ``text_embeds``: ``(K, D)`` caption embeddings (``(0, D)`` if the
      sample has no caption, e.g. a classification dataset for
      :class:`LinearProbeMetric`);
    - ``gt_text_id``: ``(K, )`` int64 global caption ids, when the sample
      has them; ``image_id`` stays as the pipeline set it.

    Captions come from ``text_ids`` (``(K, L)`` or ``(L, )``) and, failing
    that, from the strings in ``text``; the text embedder tokenizes those.

    Args:
        normalize (bool): L2-normalise the embeddings, so that dot products
            are cosine similarities. Defaults to True.
        text_batch_size (int): Captions encoded per forward pass; bounds
            memory when a batch of images carries many captions.
            Defaults to 256.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 normalize: bool = True,
                 text_batch_size: int = 256,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.normalize = normalize
        self.text_batch_size = text_batch_size

    @staticmethod
    def _captions(ds) -> Union[torch.Tensor, List[str]]:
        """``(K, L)`` token ids of one sample, else its K strings."""
        if 'text_ids' in ds:
            ids = torch.as_tensor(ds.text_ids)
            return ids[None] if ids.ndim == 1 else ids
        if 'text' in ds:
            return [ds.text] if isinstance(ds.text, str) else list(ds.text)
        return []

    def _embed(self, encode_text: Callable, texts) -> torch.Tensor:
        """Embed token ids ``(N, L)`` or ``N`` strings, in chunks."""
        step = self.text_batch_size
        feats = torch.cat([
            encode_text(texts[i:i + step]) for i in range(0, len(texts), step)
        ]).float()
        return F.normalize(feats, dim=-1) if self.normalize else feats

    @torch.no_grad()
    def predict(self,
                img_feats: torch.Tensor,
                encode_text: Callable,
                data_samples: Optional[List[DataSample]] = None,
                logit_scale: Optional[torch.Tensor] = None
                ) -> List[DataSample]:
        """Set the embeddings of the images and captions of a batch.

        Args:
            img_feats (Tensor): ``(B, D)`` image embeddings.
            encode_text (callable): Embeds ``(N, L)`` token ids or a list of
                strings into ``(N, D)``, e.g. ``CLIPModel.text_embedder()``.
            data_samples (list[DataSample], optional): One per image; fresh
                ones are made when None (images only).
            logit_scale (Tensor, optional): Unused: a positive scale does
                not change any ranking. Accepted as every predict head does.

        Returns:
            list[DataSample]: ``data_samples`` with the fields above.
        """
        if data_samples is None:
            data_samples = [DataSample() for _ in range(img_feats.shape[0])]
        img = img_feats.float()
        img = (F.normalize(img, dim=-1) if self.normalize else img).cpu()
        captions = [self._captions(ds) for ds in data_samples]
        text_embeds = [torch.zeros(0, img.shape[-1]) for _ in captions]
        # One pass over all captions of the batch (in chunks), then split
        # back per image: far fewer forward calls than per image. Token ids
        # and strings (samples without ``text_ids``) go separately.
        for kind in (torch.Tensor, list):
            owners = [i for i, c in enumerate(captions)
                      if isinstance(c, kind) and len(c)]
            if not owners:
                continue
            parts = [captions[i] for i in owners]
            flat = torch.cat(parts) if kind is torch.Tensor else sum(parts, [])
            embeds = self._embed(encode_text, flat).cpu()
            for i, emb in zip(owners, embeds.split([len(p) for p in parts])):
                text_embeds[i] = emb
        for i, ds in enumerate(data_samples):
            ds.set_field(img[i], 'image_embed')
            ds.set_field(text_embeds[i], 'text_embeds')
            if 'gt_text_id' in ds:
                ds.set_field(
                    torch.as_tensor(ds.gt_text_id, dtype=torch.long),
                    'gt_text_id')
        return data_samples
