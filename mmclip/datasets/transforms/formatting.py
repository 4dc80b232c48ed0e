"""Packing an image-text sample for mmclip's models."""
from typing import Sequence

from mmpretrain.datasets.transforms import PackInputs

from mmclip.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackImageText(PackInputs):
    """Pack image and tokenized caption(s) into ``inputs`` + ``DataSample``.

    Produces ``dict(inputs=uint8 tensor (3, H, W) BGR,
    data_samples=DataSample)`` exactly like mmpretrain's ``PackInputs``; the
    data sample additionally carries, when present in the results:

    - ``text`` (str, or list of K str in evaluation): the caption(s) used;
    - ``text_ids`` (LongTensor ``(77, )``, or ``(K, 77)`` in evaluation);
    - ``gt_text_id`` (list of K int) and ``image_id`` (int): global caption
      indices and image index, for retrieval metrics;
    - ``crop_box`` (top, left, height, width): the crop of a JPEG left
      encoded by ``RandomResizedCropOnDevice``;
    - ``gt_label`` (via ``PackInputs``), e.g. from
      ``ClassificationTextDataset``.

    **Required Keys:** ``img``, and ``text_ids`` whenever ``text`` is present
    (tokenisation happens once, in the pipeline, with ``TokenizeText``).

    Args:
        algorithm_keys (Sequence[str]): Data fields copied into the data
            sample. Defaults to ``('text', 'text_ids', 'gt_text_id',
            'image_id', 'crop_box')``.
        meta_keys (Sequence[str]): Meta fields. Defaults to
            ``PackInputs.DEFAULT_META_KEYS + ('ori_id', )``.
        input_key (str): Image key. Defaults to ``'img'``.
    """

    DEFAULT_ALGORITHM_KEYS = ('text', 'text_ids', 'gt_text_id', 'image_id',
                              'crop_box')

    def __init__(self,
                 algorithm_keys: Sequence[str] = DEFAULT_ALGORITHM_KEYS,
                 meta_keys: Sequence[str] = PackInputs.DEFAULT_META_KEYS +
                 ('ori_id', ),
                 input_key: str = 'img'):
        super().__init__(
            input_key=input_key,
            algorithm_keys=tuple(algorithm_keys),
            meta_keys=tuple(meta_keys))

    def transform(self, results: dict) -> dict:
        if 'text' in results and 'text_ids' not in results:
            raise KeyError(
                f"PackImageText got a caption but no 'text_ids' (sample "
                f"{results.get('img_path', '?')}); add dict(type="
                "'TokenizeText') to the pipeline before PackImageText.")
        if self.input_key not in results:
            raise KeyError(
                f"PackImageText found no '{self.input_key}' in the sample; "
                "add dict(type='LoadImageRGB') to the pipeline.")
        return super().transform(results)
