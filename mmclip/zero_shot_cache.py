"""Where zero-shot classifiers are cached on disk and under which name,
for both the PyTorch head (:class:`mmclip.models.ZeroShotClsHead`) and the
ONNX Runtime scorer (:class:`mmclip.deployment.OnnxCLIP`).

Building ImageNet's classifier means 80,000 prompts through the text tower
(over an hour on a 2-core CPU), so it is built once per text tower, class
list and template list. No torch here: the scorer runs where it is not
installed (its classifiers are numpy arrays in ``.npy`` files; the PyTorch
head writes tensors as ``.pt``).
"""
import hashlib
import os
import os.path as osp
import warnings
from typing import Optional, Sequence

import numpy as np

#: The cache folder unless a config or caller names another.
DEFAULT_CACHE_DIR = osp.join('~', '.cache', 'mmclip', 'zero_shot')


def zero_shot_cache_key(text_fingerprint: str, classnames: Sequence[str],
                        templates: Sequence[str]) -> str:
    """The cache name of one zero-shot classifier: any change of the text
    tower's weights, a class name or a template gives another.

    Args:
        text_fingerprint (str): Identifies the text tower's weights, e.g.
            :meth:`CLIPModel.text_fingerprint` or a hash of an exported
            ``text_encoder.onnx``.
        classnames (Sequence[str]): The classes, in order.
        templates (Sequence[str]): The prompt templates, in order.

    Returns:
        str: 64 hex digits.
    """
    digest = hashlib.sha256(text_fingerprint.encode())
    # \0 cannot occur in config strings: no ambiguity between entries.
    digest.update('\0'.join(classnames).encode())
    digest.update(b'\1')
    digest.update('\0'.join(templates).encode())
    return digest.hexdigest()


def files_fingerprint(paths: Sequence[str]) -> str:
    """A SHA-256 of the contents of the ``paths`` that exist, e.g. an
    exported text tower's files (64 hex digits)."""
    digest = hashlib.sha256()
    for path in paths:
        if osp.isfile(path):
            with open(path, 'rb') as f:
                for block in iter(lambda: f.read(1 << 24), b''):
                    digest.update(block)
    return digest.hexdigest()


def load_cached_classifier(path: Optional[str],
                           num_classes: int) -> Optional[np.ndarray]:
    """A cached ``(D, num_classes)`` float32 classifier from a ``.npy``
    file, or None: no cache, no file, or an unreadable or stale one (which
    the caller rebuilds).

    Args:
        path (str, optional): The cache file; None when caching is off.
        num_classes (int): The classes the classifier must have.

    Returns:
        np.ndarray | None: ``(D, num_classes)`` float32.
    """
    if path is None or not osp.isfile(path):
        return None
    try:
        weights = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        warnings.warn(f'Ignoring unreadable zero-shot cache {path}: {err}')
        return None
    if weights.ndim != 2 or weights.shape[1] != num_classes:
        return None
    return weights.astype(np.float32)


def save_cached_classifier(path: Optional[str], weights: np.ndarray) -> None:
    """Write a classifier to the ``.npy`` file ``path`` (written, then
    renamed: a concurrent reader never sees a partial file). A read-only
    cache only warns; None does nothing."""
    if path is None:
        return
    try:
        os.makedirs(osp.dirname(path), exist_ok=True)
        tmp = f'{path}.{os.getpid()}.tmp.npy'
        np.save(tmp, weights)
        os.replace(tmp, path)
    except OSError as err:
        warnings.warn(f'Could not write zero-shot cache {path}: {err}. Pass '
                      'cache_dir=None or a writable folder.')
