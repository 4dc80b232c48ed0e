"""mmclip's evaluation metrics (registered in ``mmclip.registry.METRICS``)."""
from .dump_predictions import DumpPredictions
from .linear_probe import LinearProbeMetric
from .retrieval import ImageTextRetrievalMetric, retrieval_metrics

__all__ = [
    'DumpPredictions', 'ImageTextRetrievalMetric', 'retrieval_metrics',
    'LinearProbeMetric'
]
