"""The CLIP models' data preprocessor: mmpretrain's, copying batches to the
device without blocking the host."""
from typing import Any

import torch
from mmengine.structures import BaseDataElement
from mmpretrain.models.utils import ClsDataPreprocessor

from mmclip.registry import MODELS


@MODELS.register_module()
class CLIPDataPreprocessor(ClsDataPreprocessor):
    """mmpretrain's ``ClsDataPreprocessor`` with mmengine's ``non_blocking``.

    A batch in pinned memory (the pretraining dataloaders pin) then goes to
    the GPU without the host waiting for the copy, and so for the previous
    step. mmengine's ``BaseDataPreprocessor`` takes the argument, but
    mmpretrain's ``ClsDataPreprocessor`` does not pass it on.

    Args:
        non_blocking (bool): Copy tensors with ``non_blocking=True``; a
            copy from unpinned memory stays synchronous. Defaults to True.
        **kwargs: ``ClsDataPreprocessor``'s arguments (``mean``, ``std``,
            ``to_rgb``, ...).
    """

    def __init__(self, non_blocking: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.non_blocking = non_blocking

    def cast_data(self, data: Any) -> Any:
        """``data`` on the model's device; containers are walked by
        mmengine's ``cast_data``, which calls this method for each item."""
        if isinstance(data, (torch.Tensor, BaseDataElement)):
            return data.to(self.device, non_blocking=self.non_blocking)
        return super().cast_data(data)
