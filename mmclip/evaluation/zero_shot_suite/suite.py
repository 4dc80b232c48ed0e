"""Zero-shot classification of one model on every dataset of a suite that
is on disk, with clip_benchmark's metrics and result files.

:func:`evaluate_suite` finds each dataset under the data root
(:func:`~.readers.find_dataset`), encodes its images once (or takes the
features kept by an earlier run, :mod:`.features`), builds the zero-shot
classifier through :class:`mmclip.models.ZeroShotClsHead` (its disk cache
included), scores with :func:`~.metrics.classification_metrics` and writes
clip_benchmark's JSON per dataset and one CSV (:mod:`.results`). Images are
decoded and preprocessed by a ``transform`` the caller gives (the model's
evaluation pipeline, :func:`mmclip.apis.preprocess.build_eval_transform`),
so this room does not import the apis above it.

With several processes (``mmengine.dist``: ``torchrun ... --launcher
pytorch``) every rank encodes every ``world_size``-th image and the
features are gathered in the data's order; the zero-shot classifier is
built by all ranks together (:class:`~mmclip.models.ZeroShotClsHead`) and
rank 0 alone writes the files.
"""
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import (all_gather_object, broadcast_object_list,
                           get_dist_info, is_main_process)
from tqdm import tqdm

from mmclip.errors import ConfigError, shorten_list
from mmclip.zero_shot_cache import DEFAULT_CACHE_DIR
from .catalog import RETRIEVAL, SuiteDataset
from .features import (ImageFeatures, data_fingerprint, load_features,
                       save_features)
from .metrics import classification_metrics, group_logits, zero_shot_logits
from .readers import SuiteData, find_dataset
from .results import markdown_table, result_record, write_csv, write_json
from .retrieval import retrieval_scores

#: Name of the CSV of all datasets in the output folder.
CSV_NAME = 'benchmark.csv'


@dataclass
class SuiteReport:
    """What :func:`evaluate_suite` did.

    Args:
        records (list[dict]): clip_benchmark's JSON record per dataset.
        counts (dict): Per dataset, ``samples`` scored and ``skipped``.
        skipped (dict): Per dataset, ``'key: reason'`` of each unreadable
            sample.
        missing (list[SuiteDataset]): Datasets not on disk.
        reused (list[str]): Datasets whose kept features were reused.
    """
    records: List[dict] = field(default_factory=list)
    counts: Dict[str, dict] = field(default_factory=dict)
    skipped: Dict[str, List[str]] = field(default_factory=dict)
    missing: List[SuiteDataset] = field(default_factory=list)
    reused: List[str] = field(default_factory=list)

    def table(self) -> str:
        """The markdown table of the results."""
        return markdown_table(self.records, self.counts)


def image_fingerprint(model: torch.nn.Module) -> str:
    """What image features depend on besides the image: the image tower's
    weights, the config's evaluation pipeline and the normalisation."""
    from mmclip.datasets.pipelines import config_test_pipeline
    from mmclip.models.utils import state_fingerprint
    preprocessing = repr((config_test_pipeline(getattr(model, 'cfg', None)),
                          model.data_preprocessor.state_dict()))
    return state_fingerprint(model.backbone, preprocessing)


def encode_images(data: SuiteData, transform: Callable,
                  encode: Callable, batch_size: int = 64,
                  num_workers: int = 4) -> ImageFeatures:
    """Encode every sample of ``data``; unreadable ones are skipped and
    named. With several processes each rank encodes every
    ``world_size``-th sample and all ranks get the gathered result.

    Args:
        data (SuiteData): The dataset.
        transform (callable): ``image -> packed dict`` (a path or an RGB
            array in; raises ValueError for an unreadable image).
        encode (callable): ``list of packed dicts -> (B, D)`` embeddings.
        batch_size (int): Images per forward pass. Defaults to 64.
        num_workers (int): Threads decoding images. Defaults to 4.

    Returns:
        ImageFeatures: Features, labels and the skipped samples (a part of
        the data that could not be read at all counts as one).
    """
    from mmclip.datasets.transforms.loading import decode_image

    def prepare(sample):
        key, image, label = sample
        try:
            if data.border and isinstance(image, str):
                with open(image, 'rb') as f:
                    image = f.read()
            if isinstance(image, bytes):
                image = decode_image(image)
            if data.border:
                b = data.border
                image = np.ascontiguousarray(image[b:-b, b:-b])
            return key, transform(image), label
        except Exception as err:  # PIL raises many types for broken files
            return key, f'{type(err).__name__}: {err}', label

    rank, world_size = get_dist_info()
    feats, labels, order, skipped = [], [], [], []
    # This rank's share: samples rank, rank + world_size, ... (the reader
    # still runs over all, so a retrieval set's captions are all read).
    share = islice(enumerate(data.samples()), rank, None, world_size)
    with ThreadPoolExecutor(max(1, num_workers)) as pool, tqdm(
            desc=data.name, unit='img', leave=False,
            disable=None if rank == 0 else True) as bar:
        while True:
            chunk = list(islice(share, batch_size))
            if not chunk:
                break
            packed = []
            results = pool.map(prepare, [sample for _, sample in chunk])
            for (index, _), (key, result, label) in zip(chunk, results):
                if isinstance(result, str):
                    skipped.append(f'{key}: {result}')
                else:
                    packed.append(result)
                    labels.append(label)
                    order.append(index)
            if packed:
                with torch.no_grad():
                    feats.append(encode(packed).float().cpu().numpy())
            bar.update(len(chunk))
    dim = feats[0].shape[1] if feats else 0
    feats = np.concatenate(feats) if feats else np.zeros((0, dim),
                                                         np.float32)
    if world_size > 1:
        shares = all_gather_object((order, feats, labels, skipped))
        order = [i for part in shares for i in part[0]]
        dim = max(part[1].shape[1] for part in shares)
        feats = np.concatenate([part[1].reshape(-1, dim) for part in shares])
        labels = [label for part in shares for label in part[2]]
        skipped = [s for part in shares for s in part[3]]
        # Back to the data's order.
        ranked = np.argsort(order, kind='stable')
        feats, labels = feats[ranked], [labels[i] for i in ranked]
    # Every rank read all of the data: its read errors are the same.
    return ImageFeatures(feats, np.asarray(labels, dtype=np.int64),
                         skipped + data.read_errors)


def _override(overrides: Optional[Dict[str, object]], name: str):
    """A per-run class-name or template override of dataset ``name``:
    its own entry, else the one for every dataset (``'*'``)."""
    overrides = overrides or {}
    return overrides.get(name, overrides.get('*'))


def zero_shot_classifier(model, classnames: Sequence[str],
                         templates: Sequence[str],
                         cache_dir: Optional[str]) -> torch.Tensor:
    """The ``(D, C)`` classifier from mmclip's zero-shot head (built once
    per text tower, class list and template list; cached on disk)."""
    from mmclip.models.heads import ZeroShotClsHead
    head = ZeroShotClsHead(list(classnames), list(templates),
                           cache_dir=cache_dir)
    return head.get_classifier(model.text_embedder())


def score_dataset(model, data: SuiteData, kept: ImageFeatures,
                  overrides: Dict[str, Dict[str, object]],
                  cache_dir: Optional[str]) -> Dict[str, float]:
    """clip_benchmark's metrics of kept features against the dataset's
    (or the run's) class names and templates. A dataset's class groups
    (ObjectNet's) apply to its own class names; names given for the run
    are one per label.

    Raises:
        ConfigError: A label beyond the class list, or no readable image.
    """
    from mmclip.datasets.zero_shot_data import (resolve_classnames,
                                                resolve_templates)
    given = _override(overrides.get('classnames'), data.name)
    classnames = resolve_classnames(given or data.classnames)
    groups = None if given else data.class_groups
    num_labels = len(groups) if groups else len(classnames)
    templates = resolve_templates(
        _override(overrides.get('templates'), data.name) or data.templates)
    if not len(kept.labels):
        raise ConfigError(
            f'{data.name}: no readable image in {data.source} '
            f'({shorten_list(kept.skipped, 2)}).')
    top = int(kept.labels.max())
    if top >= num_labels:
        raise ConfigError(
            f'{data.name}: labels go up to {top} but the class list has '
            f'{num_labels} names; give the full list (one name per '
            'label) with --classnames.')
    classifier = zero_shot_classifier(model, classnames, templates,
                                      cache_dir)
    logits = zero_shot_logits(kept.features, classifier)
    if groups:
        logits = group_logits(logits, groups)
    return classification_metrics(logits, kept.labels)


def evaluate_suite(model,
                   datasets: Sequence[SuiteDataset],
                   data_root: str,
                   out_dir: str,
                   transform: Callable,
                   encode: Callable,
                   model_name: str,
                   pretrained: str,
                   overrides: Optional[Dict[str, Dict[str, object]]] = None,
                   cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
                   batch_size: int = 64,
                   num_workers: int = 4) -> SuiteReport:
    """Evaluate ``model`` on every dataset of ``datasets`` found on disk.

    Args:
        model (CLIPModel): In eval mode.
        datasets (Sequence[SuiteDataset]): From
            :func:`~.catalog.resolve_datasets`.
        data_root (str): Where the datasets lie.
        out_dir (str): Where the JSON files, the CSV and the kept features
            go (created).
        transform (callable): See :func:`encode_images`.
        encode (callable): See :func:`encode_images`.
        model_name (str): The JSON's ``model``.
        pretrained (str): The JSON's ``pretrained`` (the checkpoint).
        overrides (dict, optional): ``{'classnames': {dataset or '*':
            spec}, 'templates': {...}}``, a spec being anything
            :func:`~mmclip.datasets.zero_shot_data.resolve_classnames` /
            ``resolve_templates`` take. Defaults to None (each dataset's
            own lists).
        cache_dir (str, optional): The zero-shot classifiers' disk cache.
        batch_size (int): Images per forward pass. Defaults to 64.
        num_workers (int): Decoding threads. Defaults to 4.

    Returns:
        SuiteReport: The results; the CSV is ``out_dir/benchmark.csv``.
    """
    os.makedirs(out_dir, exist_ok=True)
    report = SuiteReport()
    tower = image_fingerprint(model)
    for spec in datasets:
        data = find_dataset(spec, data_root)
        if data is None:
            report.missing.append(spec)
            continue
        fingerprint = f'{tower}:{data_fingerprint(data.files)}'
        if data.border:  # features of cropped images are others
            fingerprint += f':border{data.border}'
        # Rank 0's kept features, so that the ranks agree on encoding.
        kept = [load_features(out_dir, spec.name, fingerprint)
                if is_main_process() else None]
        broadcast_object_list(kept)
        kept = kept[0]
        if kept is not None:
            report.reused.append(spec.name)
        else:
            kept = encode_images(data, transform, encode, batch_size,
                                 num_workers)
            if data.task == RETRIEVAL:
                kept = ImageFeatures(
                    kept.features, kept.labels, kept.skipped,
                    [data.captions[int(o)] for o in kept.labels])
            if is_main_process():
                save_features(out_dir, spec.name, fingerprint, kept)
        if data.task == RETRIEVAL:
            metrics = retrieval_scores(kept.features, kept.captions,
                                       model.text_embedder())
        else:
            metrics = score_dataset(model, data, kept, overrides or {},
                                    cache_dir)
        record = result_record(spec.name, model_name, pretrained, metrics,
                               task=data.task)
        if is_main_process():
            write_json(out_dir, record)
        report.records.append(record)
        report.counts[spec.name] = dict(samples=len(kept.labels),
                                        skipped=len(kept.skipped))
        report.skipped[spec.name] = kept.skipped
    if report.records and is_main_process():
        write_csv(osp.join(out_dir, CSV_NAME), report.records)
    return report
