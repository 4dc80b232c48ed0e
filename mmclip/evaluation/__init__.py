"""mmclip.evaluation: retrieval and linear-probe metrics, prediction dumps,
and utilities.

Importing mmpretrain's counterpart fills the parent registry that mmclip's
registry falls back to.
"""
import mmpretrain.evaluation  # noqa: F401

from .linear_probe import (LinearProbeInputError, build_probe_dataloader,
                           check_labelled, extract_labelled_features,
                           image_features, linear_probe, load_image_tower,
                           probe_dataloaders)
from .metrics import *  # noqa: F401,F403
from .metrics import (DumpPredictions, ImageTextRetrievalMetric,
                      LinearProbeMetric, retrieval_metrics)

__all__ = [
    'LinearProbeInputError', 'build_probe_dataloader', 'check_labelled',
    'extract_labelled_features', 'image_features', 'linear_probe',
    'load_image_tower', 'probe_dataloaders', 'DumpPredictions',
    'ImageTextRetrievalMetric', 'LinearProbeMetric', 'retrieval_metrics'
]
