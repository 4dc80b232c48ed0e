"""Per-sample predictions written to a file (``tools/test.py --out``)."""
import json
import os
import os.path as osp
import pickle
from typing import List, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmclip.registry import METRICS

#: Output formats, picked by the file's suffix.
OUT_FORMATS = ('.json', '.pkl')
#: The fields written for every sample, when the sample has them.
DUMPED_KEYS = ('img_path', 'sample_idx', 'gt_label', 'pred_label',
               'pred_score')


def _plain(value):
    """Tensor/ndarray -> nested Python numbers (JSON- and pickle-safe)."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@METRICS.register_module()
class DumpPredictions(BaseMetric):
    """Write every sample's prediction to ``out_file`` as a list of dicts
    with ``img_path``, ``sample_idx``, ``gt_label``, ``pred_label`` and
    ``pred_score`` (those the sample has), gathered over ranks. Reports no
    metric.

    Example::

        test_evaluator = [
            dict(type='Accuracy', topk=(1, 5)),
            dict(type='DumpPredictions', out_file='preds.json'),
        ]

    Args:
        out_file (str): Output path; its suffix (``.json`` or ``.pkl``)
            picks the format. Missing folders are created.
        collect_device (str): Where ranks gather results, ``'cpu'`` or
            ``'gpu'``. Defaults to ``'cpu'``.
        **kwargs: Other arguments of ``mmengine.evaluator.BaseMetric``
            (``prefix``, ``collect_dir``).
    """
    default_prefix = 'dump'

    def __init__(self, out_file: str, collect_device: str = 'cpu', **kwargs):
        if osp.splitext(out_file)[1] not in OUT_FORMATS:
            raise ValueError(f'DumpPredictions: out_file must end in one of '
                             f'{OUT_FORMATS} (tools/test.py --out), got '
                             f'{out_file!r}.')
        super().__init__(collect_device=collect_device, **kwargs)
        self.out_file = out_file

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            sample = sample if isinstance(sample, dict) else sample.to_dict()
            self.results.append({
                key: _plain(sample[key])
                for key in DUMPED_KEYS if key in sample
            })

    def compute_metrics(self, results: List[dict]) -> dict:
        os.makedirs(osp.dirname(osp.abspath(self.out_file)), exist_ok=True)
        if self.out_file.endswith('.json'):
            with open(self.out_file, 'w') as f:
                json.dump(results, f)
        else:
            with open(self.out_file, 'wb') as f:
                pickle.dump(results, f)
        return {}
