"""Predict head that embeds images and their captions for retrieval."""
from typing import List, Optional

import torch
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
    that, are tokenized from ``text`` with the model's tokenizer.

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

    def _text_ids(self, model, ds) -> Optional[torch.Tensor]:
        """``(K, L)`` token ids of one sample, or None without captions."""
        if 'text_ids' in ds:
            ids = torch.as_tensor(ds.text_ids)
            return ids[None] if ids.ndim == 1 else ids
        if 'text' in ds:
            text = [ds.text] if isinstance(ds.text, str) else list(ds.text)
            return model.tokenizer(text, truncate=True)
        return None

    @torch.no_grad()
    def predict(self,
                model,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        """Embed the images and captions of a batch.

        Args:
            model (CLIPModel): Provides ``encode_image`` / ``encode_text``.
            inputs (Tensor): Preprocessed images ``(B, 3, H, W)``.
            data_samples (list[DataSample], optional): One per image; fresh
                ones are made when None (images only).

        Returns:
            list[DataSample]: ``data_samples`` with the fields above.
        """
        if data_samples is None:
            data_samples = [DataSample() for _ in range(inputs.shape[0])]
        img = model.encode_image(inputs, normalize=self.normalize)
        per_sample = [self._text_ids(model, ds) for ds in data_samples]
        counts = [0 if ids is None else ids.shape[0] for ids in per_sample]
        dim = img.shape[-1]
        if sum(counts):
            # One pass over all captions of the batch (in chunks), then split
            # back per image: far fewer forward calls than per image.
            flat = torch.cat([ids for ids in per_sample if ids is not None])
            txt = torch.cat([
                model.encode_text(
                    flat[i:i + self.text_batch_size],
                    normalize=self.normalize)
                for i in range(0, flat.shape[0], self.text_batch_size)
            ])
            text_embeds = list(txt.float().cpu().split(counts))
        else:
            text_embeds = [torch.zeros(0, dim) for _ in counts]
        img = img.float().cpu()
        for i, ds in enumerate(data_samples):
            ds.set_field(img[i], 'image_embed')
            ds.set_field(text_embeds[i], 'text_embeds')
            if 'gt_text_id' in ds:
                ds.set_field(
                    torch.as_tensor(ds.gt_text_id, dtype=torch.long),
                    'gt_text_id')
        return data_samples
