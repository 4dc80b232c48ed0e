"""Within-split linear-probe metric for mmengine's test / val loops."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from mmclip.registry import METRICS
from ..linear_probe import linear_probe


@METRICS.register_module()
class LinearProbeMetric(BaseMetric):
    """Linear probe by stratified k-fold cross-validation on one split.

    Collects the image feature (``feature_key``, e.g. ``image_embed`` from
    :class:`ImageTextRetrievalHead`) and ``gt_label`` of every evaluated
    sample, then for each of ``num_folds`` stratified folds fits
    :func:`mmclip.evaluation.linear_probe.linear_probe` on the other folds
    (choosing ``C`` on a held-out part of them) and scores the fold.

    Note:
        This is a *within-split* estimate, convenient as a cheap signal
        during training (e.g. on a val set). It is not the CLIP paper's
        protocol, which trains on the dataset's train split and reports on
        its test split: use ``tools/analysis_tools/linear_probe.py`` for
        numbers comparable to the paper.

    Args:
        feature_key (str): Data-sample field holding the ``(D, )`` feature.
            Defaults to ``'image_embed'``.
        num_folds (int): Stratified folds (>= 2; capped by the smallest class
            count). Defaults to 5.
        val_fraction (float): See :func:`linear_probe`. Defaults to 0.2.
        Cs (Sequence[float], optional): See :func:`linear_probe`; None runs
            the binary search. Defaults to None.
        max_iter (int): L-BFGS iterations. Defaults to 1000.
        seed (int): Seed of the folds and validation splits. Defaults to 0.
        n_threads (int, optional): See :func:`linear_probe`. Defaults to 1.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Defaults to ``'linear_probe'``.
    """
    default_prefix: Optional[str] = 'linear_probe'

    def __init__(self,
                 feature_key: str = 'image_embed',
                 num_folds: int = 5,
                 val_fraction: float = 0.2,
                 Cs: Optional[Sequence[float]] = None,
                 max_iter: int = 1000,
                 seed: int = 0,
                 n_threads: Optional[int] = 1,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_folds < 2:
            raise ValueError(f'num_folds must be >= 2, got {num_folds}.')
        self.feature_key = feature_key
        self.num_folds = num_folds
        self.probe_kwargs = dict(
            val_fraction=val_fraction,
            Cs=None if Cs is None else list(Cs),
            max_iter=max_iter,
            seed=seed,
            n_threads=n_threads)
        self.seed = seed

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's feature and label (on CPU, as numpy)."""
        for ds in data_samples:
            if self.feature_key not in ds or 'gt_label' not in ds:
                raise KeyError(
                    f'LinearProbeMetric needs {self.feature_key!r} and '
                    "'gt_label' in the predictions (e.g. predict_head="
                    "dict(type='ImageTextRetrievalHead') on a classification "
                    'dataset).')
            feat = torch.as_tensor(ds[self.feature_key]).detach().cpu()
            label = torch.as_tensor(ds['gt_label']).reshape(-1)[0]
            self.results.append(
                (feat.float().reshape(-1).numpy(), int(label)))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Mean and spread of the fold accuracies.

        Returns:
            dict[str, float]: ``top1`` (mean test-fold accuracy, %),
            ``top1_std`` and ``C`` (median chosen ``C`` over the folds).
        """
        from sklearn.model_selection import StratifiedKFold
        feats = np.stack([r[0] for r in results])
        labels = np.asarray([r[1] for r in results], dtype=np.int64)
        _, counts = np.unique(labels, return_counts=True)
        # StratifiedKFold needs every class in every fold.
        folds = min(self.num_folds, int(counts.min()))
        if folds < 2:
            raise ValueError('LinearProbeMetric needs at least 2 samples of '
                             'every class.')
        skf = StratifiedKFold(
            n_splits=folds, shuffle=True, random_state=self.seed)
        accs, cs = [], []
        for train, test in skf.split(feats, labels):
            res = linear_probe(feats[train], labels[train], feats[test],
                               labels[test], **self.probe_kwargs)
            accs.append(res['top1'])
            cs.append(res['C'])
        return dict(
            top1=float(np.mean(accs)),
            top1_std=float(np.std(accs)),
            C=float(np.median(cs)))
