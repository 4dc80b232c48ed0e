"""Zero-shot evaluation on the datasets CLIP papers report, with
clip_benchmark's dataset names, metrics and result files (see
``tools/analysis_tools/zero_shot_suite.py``)."""
from .catalog import (CLASSIFICATION, COLLECTIONS, DATASETS, RETRIEVAL,
                      SuiteDataset, resolve_datasets)
from .features import ImageFeatures, load_features, save_features
from .metrics import classification_metrics, zero_shot_logits
from .readers import (SuiteData, find_dataset, read_class_folders,
                      read_torchvision_cifar, read_wds_export)
from .results import (csv_rows, markdown_table, result_record, write_csv,
                      write_json)
from .suite import (CSV_NAME, SuiteReport, encode_images, evaluate_suite,
                    image_fingerprint, score_dataset)

__all__ = [
    'CLASSIFICATION', 'COLLECTIONS', 'DATASETS', 'RETRIEVAL', 'SuiteDataset',
    'resolve_datasets', 'ImageFeatures', 'load_features', 'save_features',
    'classification_metrics', 'zero_shot_logits', 'SuiteData',
    'find_dataset', 'read_class_folders', 'read_torchvision_cifar',
    'read_wds_export', 'csv_rows', 'markdown_table', 'result_record',
    'write_csv', 'write_json', 'CSV_NAME', 'SuiteReport', 'encode_images',
    'evaluate_suite', 'image_fingerprint', 'score_dataset'
]
