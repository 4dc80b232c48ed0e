"""COCO-style caption annotations, for CLIP training and retrieval evaluation.
"""
import json
from collections import OrderedDict
from typing import List, Sequence

import numpy as np
from mmengine.fileio import get_local_path, join_path
from mmengine.logging import MMLogger

from mmclip.registry import DATASETS
from .base_dataset import ImageTextBaseDataset, check_caption_sampling


@DATASETS.register_module()
class CocoCaptionDataset(ImageTextBaseDataset):
    """Images with all their captions from a COCO captions JSON.

    The file holds ``images: [{id, file_name}, ...]`` and
    ``annotations: [{image_id, caption}, ...]`` (``captions_train2017.json``
    and the like). There is one entry per image, carrying all its captions:

    - training (``test_mode=False``): the pipeline must contain
      ``SampleCaption`` (before ``TokenizeText``), which draws one caption
      each time the image is loaded, so every epoch sees every image once
      with a fresh caption. The check happens at build time.
    - evaluation (``test_mode=True``): all captions are kept; ``TokenizeText``
      makes ``text_ids`` of shape ``(K, 77)`` and ``PackImageText`` puts
      ``text`` (K str), ``text_ids``, ``gt_text_id`` and ``image_id`` into the
      data sample for a retrieval metric.

    Caption ids are global and contiguous per image in entry order: image
    ``i`` owns ids ``offsets[i] .. offsets[i] + K_i - 1``, and
    :meth:`get_all_captions` / :meth:`caption_to_image` return the flat list
    and the caption -> image index map a retrieval metric needs. Images
    without captions and captions of unknown images are dropped with a
    warning giving their count.

    Data info of each entry: ``img_path`` (str), ``text`` (list of str),
    ``gt_text_id`` (list of int), ``image_id`` (int, entry index), ``ori_id``
    (COCO image id), ``sample_idx`` (int).

    Args:
        ann_file (str): COCO captions JSON, relative to ``data_root`` unless
            absolute.
        data_root (str): Dataset root. Defaults to ''.
        data_prefix (dict): ``dict(img_path=...)``, image folder relative to
            ``data_root`` (e.g. ``'train2017'``). Defaults to
            ``dict(img_path='')``.
        pipeline (Sequence[dict]): Transforms. Defaults to ().
        test_mode (bool): Keep all captions (evaluation). Defaults to False.
        **kwargs: Other :class:`ImageTextBaseDataset` /
            ``mmengine.dataset.BaseDataset`` arguments (``max_bad_fraction``,
            ``min_samples``, ``metainfo``, ``indices``, ``lazy_init``, ...).
    """

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 data_prefix: dict = dict(img_path=''),
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 **kwargs):
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=dict(data_prefix),
            pipeline=pipeline,
            test_mode=test_mode,
            **kwargs)
        if not test_mode:
            check_caption_sampling(self.pipeline, type(self).__name__)

    def load_data_list(self) -> List[dict]:
        """Group the captions of the annotation file by image."""
        with get_local_path(self.ann_file) as path, open(
                path, encoding='utf-8') as f:
            coco = json.load(f)
        for key in ('images', 'annotations'):
            if key not in coco:
                raise ValueError(
                    f'{self.ann_file} has no {key!r} list (keys: '
                    f'{sorted(coco)}); a COCO captions file needs "images" '
                    '[{id, file_name}] and "annotations" [{image_id, '
                    'caption}].')
        prefix = self.data_prefix.get('img_path', '')
        images = OrderedDict()
        for img in coco['images']:
            images.setdefault(img['id'], dict(
                img_path=join_path(prefix, img['file_name'])
                if prefix else img['file_name'],
                text=[], ori_id=img['id']))
        orphans = 0
        for ann in coco['annotations']:
            entry = images.get(ann['image_id'])
            if entry is None:
                orphans += 1
                continue
            entry['text'].append(ann['caption'])

        data_list, no_caption, next_id = [], 0, 0
        for entry in images.values():
            if not entry['text']:
                no_caption += 1
                continue
            num = len(entry['text'])
            entry['gt_text_id'] = list(range(next_id, next_id + num))
            entry['image_id'] = len(data_list)
            next_id += num
            data_list.append(entry)
        if orphans or no_caption:
            MMLogger.get_current_instance().warning(
                f'{self.ann_file}: dropped {no_caption} images without '
                f'captions and {orphans} captions of images not in '
                '"images".')
        return data_list

    def get_all_captions(self) -> List[str]:
        """List[str]: Every caption, indexed by ``gt_text_id``."""
        return [c for i in range(len(self))
                for c in self.get_data_info(i)['text']]

    def caption_to_image(self) -> np.ndarray:
        """np.ndarray: ``(num_captions, )`` int64, the image index (entry
        index = ``image_id``) of every caption id."""
        return np.concatenate([
            np.full(len(self.get_data_info(i)['text']), i, dtype=np.int64)
            for i in range(len(self))
        ]) if len(self) else np.zeros(0, dtype=np.int64)


def karpathy_to_coco_captions(karpathy: dict, split: str = 'test') -> dict:
    """One split of Karpathy's caption file (``dataset_coco.json``,
    ``dataset_flickr30k.json``: ``images`` of ``{imgid, filename,
    [filepath], split, sentences: [{raw}]}``) in the COCO captions layout
    that :class:`CocoCaptionDataset` reads.

    Args:
        karpathy (dict): The loaded file.
        split (str): ``'test'``, ``'val'``, ``'train'`` or ``'restval'``.
            Defaults to ``'test'`` (the 5k COCO / 1k Flickr30k images the
            retrieval papers report).

    Returns:
        dict: ``images`` ``[{id, file_name}]`` (``file_name`` is
        ``filepath/filename`` when the file gives a ``filepath``, as COCO's
        ``val2014/...``), ``annotations`` ``[{id, image_id, caption}]``
        with each sentence's ``raw`` text, in the file's order.

    Raises:
        ValueError: No image of ``split``, naming the splits there are.
    """
    images, annotations = [], []
    for image in karpathy.get('images', []):
        if image.get('split') != split:
            continue
        name = image['filename']
        if image.get('filepath'):
            name = f'{image["filepath"]}/{name}'
        images.append(dict(id=image['imgid'], file_name=name))
        annotations += [
            dict(id=sentence.get('sentid', len(annotations)),
                 image_id=image['imgid'], caption=sentence['raw'])
            for sentence in image['sentences']
        ]
    if not images:
        splits = sorted({i.get('split') for i in karpathy.get('images', [])},
                        key=str)
        raise ValueError(
            f'no image of split {split!r} (the file has {splits}); pass one '
            "of those, or Karpathy's dataset_<name>.json.")
    return dict(images=images, annotations=annotations)
