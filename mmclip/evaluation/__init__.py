"""mmclip.evaluation: retrieval and linear-probe metrics, prediction dumps,
and utilities.

Importing mmpretrain's counterpart fills the parent registry that mmclip's
registry falls back to.
"""
import mmpretrain.evaluation  # noqa: F401

from .linear_probe import extract_features, linear_probe
from .metrics import *  # noqa: F401,F403
from .metrics import (DumpPredictions, ImageTextRetrievalMetric,
                      LinearProbeMetric, retrieval_metrics)

__all__ = [
    'extract_features', 'linear_probe', 'DumpPredictions',
    'ImageTextRetrievalMetric', 'LinearProbeMetric', 'retrieval_metrics'
]
