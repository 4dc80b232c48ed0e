"""mmclip's evaluation metrics (registered in ``mmclip.registry.METRICS``)."""
from .linear_probe import LinearProbeMetric
from .retrieval import ImageTextRetrievalMetric, retrieval_metrics

__all__ = [
    'ImageTextRetrievalMetric', 'retrieval_metrics', 'LinearProbeMetric'
]
