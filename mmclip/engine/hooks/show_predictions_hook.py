"""Annotated PNGs of test images with their top-k classes
(``tools/test.py --show-dir``)."""
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmclip.models.utils import model_classes
from mmclip.registry import HOOKS


@HOOKS.register_module()
class ShowPredictionsHook(Hook):
    """Save the first ``max_images`` test images as PNGs with a bar chart
    of their top-k classes (and the ground truth when known), drawn by
    :func:`mmclip.visualization.draw_prediction_panel`. Files are named
    ``{sample_idx:06d}_{file stem}.png``.

    Class names are the model's (a zero-shot head's, see
    :func:`mmclip.models.utils.model_classes`), else the test dataset's
    ``classes``, else the class indices.

    Example::

        custom_hooks = [dict(type='ShowPredictionsHook', out_dir='show')]

    Args:
        out_dir (str): Folder for the PNGs (created).
        max_images (int): Images to draw per rank. Defaults to 16.
        topk (int): Classes listed per image. Defaults to 5.
        min_size (int): Small images are upscaled (nearest) to this side
            length so that they stay visible next to the text. Defaults to
            224.
    """
    priority = 'LOWEST'

    def __init__(self, out_dir: str, max_images: int = 16, topk: int = 5,
                 min_size: int = 224):
        self.out_dir = out_dir
        self.max_images = max_images
        self.topk = topk
        self.min_size = min_size
        self.written: List[str] = []

    def _classnames(self, model, runner) -> Optional[Sequence[str]]:
        return model_classes(model) or (
            runner.test_dataloader.dataset.metainfo.get('classes'))

    @staticmethod
    def _to_rgb_array(model, img) -> np.ndarray:
        arr = img.detach().cpu().numpy().transpose(1, 2, 0)
        # The pipeline's channel order is whatever the preprocessor flips
        # into RGB (mmcv loads BGR; CIFAR arrays are already RGB).
        if getattr(model.data_preprocessor, 'to_rgb', False):
            arr = arr[..., ::-1]
        return np.ascontiguousarray(arr.clip(0, 255).astype(np.uint8))

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        if len(self.written) >= self.max_images or not outputs:
            return
        from mmclip.visualization import save_prediction_panel
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        names = self._classnames(model, runner)
        for img, sample in zip(data_batch['inputs'], outputs):
            if len(self.written) >= self.max_images:
                break
            scores = sample.pred_score
            labels = [
                names[i] if names is not None and i < len(names) else str(i)
                for i in range(len(scores))
            ]
            gt = None
            if 'gt_label' in sample:
                gt_idx = int(sample.gt_label.reshape(-1)[0])
                gt = labels[gt_idx] if gt_idx < len(labels) else str(gt_idx)
            idx = sample.metainfo.get('sample_idx', len(self.written))
            img_path = sample.metainfo.get('img_path', '') or 'img'
            stem = osp.splitext(osp.basename(img_path))[0]
            path = osp.join(self.out_dir, f'{idx:06d}_{stem}.png')
            save_prediction_panel(
                self._to_rgb_array(model, img), labels, scores, path,
                topk=self.topk, title=osp.basename(img_path), gt_label=gt,
                min_size=self.min_size)
            self.written.append(path)
