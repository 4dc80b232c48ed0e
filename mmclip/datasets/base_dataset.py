"""Shared base of mmclip's map-style image-text datasets.

It adds to mmengine's ``BaseDataset``:

* pipelines built by :func:`mmclip.datasets.pipelines.build_pipeline` (in the
  ``mmclip`` scope, so ``LoadImageRGB`` & co. resolve even where another
  default scope such as ``mmpretrain`` is active);
* bad-sample accounting (:mod:`mmclip.datasets.bad_samples`): in training a
  sample the pipeline rejects is counted, named in the log and replaced by
  another index (mmengine's refetch); in evaluation skipping would shift the
  metric, so it raises an error naming the file and the reason.
"""
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset, Compose

from .bad_samples import BAD_REASON_KEY, BadSampleTracker
from .pipelines import build_pipeline


def check_caption_sampling(pipeline: Compose, dataset: str) -> None:
    """Ensure a training pipeline picks one caption before tokenising.

    Datasets whose entries carry several captions (COCO, prompt templates)
    rely on ``SampleCaption``; without it ``TokenizeText`` would tokenize all
    of them and the model could not stack the ``text_ids`` of a batch.

    Args:
        pipeline (Compose): The built pipeline.
        dataset (str): Dataset class name for the error message.
    """
    names = [type(t).__name__ for t in pipeline.transforms]
    if 'TokenizeText' in names and ('SampleCaption' not in names or
                                    names.index('SampleCaption') >
                                    names.index('TokenizeText')):
        raise ValueError(
            f'{dataset} entries hold several captions; a training pipeline '
            "needs dict(type='SampleCaption') before dict(type='TokenizeText')"
            ' (or build the dataset with test_mode=True to keep them all).')


class ImageTextBaseDataset(BaseDataset):
    """``BaseDataset`` with mmclip pipelines and bad-sample accounting.

    Args:
        max_bad_fraction (float, optional): Training stops with
            :class:`~mmclip.datasets.bad_samples.TooManyBadSamplesError` when
            more than this fraction of the samples one process read were bad.
            None disables the limit. Defaults to 0.1.
        min_samples (int): Samples a process must have seen before the limit
            applies. Defaults to 20.
        pipeline (Sequence[dict | callable]): Transforms. Defaults to ().
        **kwargs: Other arguments of ``mmengine.dataset.BaseDataset``
            (``ann_file``, ``metainfo``, ``data_root``, ``data_prefix``,
            ``test_mode``, ``lazy_init``, ``max_refetch``, ...).
    """

    def __init__(self,
                 *args,
                 pipeline: Sequence = (),
                 max_bad_fraction: Optional[float] = 0.1,
                 min_samples: int = 20,
                 **kwargs):
        self.max_bad_fraction = max_bad_fraction
        self.min_samples = min_samples
        self._tracker: Optional[BadSampleTracker] = None
        super().__init__(
            *args, pipeline=list(build_pipeline(pipeline).transforms),
            **kwargs)

    @property
    def bad_samples(self) -> BadSampleTracker:
        """BadSampleTracker: This process's counters (created lazily)."""
        if self._tracker is None:
            self._tracker = BadSampleTracker(
                f'{type(self).__name__}({self._source()})',
                max_bad_fraction=self.max_bad_fraction,
                min_samples=self.min_samples)
        return self._tracker

    def _source(self) -> str:
        """Where the entries come from, for messages."""
        return self.ann_file or self.data_root or '?'

    def prepare_data(self, idx: int) -> Optional[dict]:
        """Run the pipeline on entry ``idx``; count and log a rejection.

        Args:
            idx (int): Entry index.

        Returns:
            dict | None: The pipeline output, None for a bad sample in
            training (mmengine then fetches another index).
        """
        data_info = self.get_data_info(idx)
        data = self.pipeline(data_info)
        if data is not None:
            self.bad_samples.record_good()
            return data
        path = str(data_info.get('img_path', f'entry {idx}'))
        reason = data_info.get(BAD_REASON_KEY,
                               'a transform returned None without a reason')
        if self.test_mode:
            raise RuntimeError(
                f'{type(self).__name__}: evaluation sample {idx} ({path}) is '
                f'bad: {reason}. Evaluation cannot skip samples without '
                'changing the metric; fix the file or remove it from '
                f'{self.ann_file}.')
        self.bad_samples.record_bad(path, reason)
        return None

    def load_data_list(self) -> List[dict]:  # pragma: no cover - abstract
        raise NotImplementedError
