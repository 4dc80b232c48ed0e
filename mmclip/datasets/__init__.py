"""mmclip.datasets: image-text datasets and transforms for CLIP training.

Importing mmpretrain's counterpart fills the parent registry that mmclip's
registry falls back to (``RandomResizedCrop``, ``CenterCrop``, ``ImageNet``,
``CustomDataset``, ...).
"""
import mmpretrain.datasets  # noqa: F401

from .bad_samples import (BAD_REASON_KEY, BadSampleTracker,
                          TooManyBadSamplesError, mark_bad)
from .base_dataset import ImageTextBaseDataset
from .classification_text import ClassificationTextDataset
from .coco_caption import CocoCaptionDataset
from .csv_classification import CsvClassificationDataset  # noqa: F401
from .image_text import ImageTextDataset
from .pipelines import (build_pipeline, clip_test_pipeline,
                        clip_train_pipeline, config_test_pipeline)
from .shard_list import list_shards
from .transforms import (LoadImageRGB, PackImageText,
                         RandomResizedCropOnDevice, SampleCaption,
                         TokenizeText)
from .webdataset import WebDatasetShards

__all__ = [
    'ImageTextBaseDataset', 'ImageTextDataset', 'CocoCaptionDataset',
    'ClassificationTextDataset', 'WebDatasetShards', 'LoadImageRGB',
    'RandomResizedCropOnDevice', 'SampleCaption', 'TokenizeText',
    'PackImageText', 'BadSampleTracker',
    'TooManyBadSamplesError', 'BAD_REASON_KEY', 'mark_bad', 'build_pipeline',
    'clip_train_pipeline', 'clip_test_pipeline', 'config_test_pipeline',
    'list_shards'
]
