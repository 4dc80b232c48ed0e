"""Image features kept beside the results, so that scoring a dataset again
(other templates, other class names) does not encode its images again.

Per dataset, ``{name}_features.npy`` (``(N, D)`` float32, not normalised),
``{name}_labels.npy`` (``(N, )`` int64) and ``{name}_features.json``: the
fingerprint they were computed under and the unreadable samples skipped.
The fingerprint hashes the image tower's weights, the preprocessing and
the data files (paths, sizes, modification times): any change recomputes.
"""
import hashlib
import json
import os
import os.path as osp
from typing import List, NamedTuple, Optional, Sequence

import numpy as np


class ImageFeatures(NamedTuple):
    """A dataset's encoded images.

    Args:
        features (np.ndarray): ``(N, D)`` float32 image embeddings.
        labels (np.ndarray): ``(N, )`` int64 class indices.
        skipped (list[str]): ``'key: reason'`` of each unreadable sample.
        captions (list[list[str]], optional): A retrieval set's captions
            of each image. Defaults to None.
    """
    features: np.ndarray
    labels: np.ndarray
    skipped: List[str]
    captions: Optional[List[List[str]]] = None


def data_fingerprint(files: Sequence[str]) -> str:
    """SHA-256 of the paths, sizes and modification times of ``files``
    (cheap: nothing is read; a missing file counts as such)."""
    digest = hashlib.sha256()
    for path in files:
        try:
            stat = os.stat(path)
            state = f'{stat.st_size}\0{stat.st_mtime_ns}'
        except FileNotFoundError:
            state = 'missing'
        digest.update(f'{path}\0{state}\n'.encode())
    return digest.hexdigest()


def _paths(out_dir: str, name: str) -> dict:
    stem = osp.join(out_dir, name.replace('/', '_'))
    return dict(features=f'{stem}_features.npy', labels=f'{stem}_labels.npy',
                meta=f'{stem}_features.json')


def load_features(out_dir: str, name: str,
                  fingerprint: str) -> Optional[ImageFeatures]:
    """The kept features of dataset ``name`` if they were computed under
    ``fingerprint``, else None."""
    paths = _paths(out_dir, name)
    if not all(osp.isfile(p) for p in paths.values()):
        return None
    try:
        with open(paths['meta']) as f:
            meta = json.load(f)
        if meta.get('fingerprint') != fingerprint:
            return None
        features = np.load(paths['features'], allow_pickle=False)
        labels = np.load(paths['labels'], allow_pickle=False)
    except (OSError, ValueError):  # partial or foreign files: recompute
        return None
    if len(features) != len(labels):
        return None
    return ImageFeatures(features, labels, list(meta.get('skipped', [])),
                         meta.get('captions'))


def save_features(out_dir: str, name: str, fingerprint: str,
                  kept: ImageFeatures) -> None:
    """Keep ``kept`` under ``fingerprint`` (the meta file last: a run
    stopped half-way leaves nothing that :func:`load_features` takes)."""
    paths = _paths(out_dir, name)
    if osp.isfile(paths['meta']):
        os.remove(paths['meta'])
    np.save(paths['features'], kept.features.astype(np.float32))
    np.save(paths['labels'], kept.labels.astype(np.int64))
    with open(paths['meta'], 'w') as f:
        json.dump(dict(fingerprint=fingerprint, skipped=kept.skipped,
                       captions=kept.captions), f, indent=1)
