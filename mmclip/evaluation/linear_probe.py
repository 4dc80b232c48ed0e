"""Linear-probe evaluation of frozen image features (CLIP paper, App. A.3).

The CLIP paper fits scikit-learn's L-BFGS logistic regression (at most 1000
iterations) on frozen features, choosing the L2 strength ``lambda`` on a
validation split by a parametric binary search over ``[1e-6, 1e6]``: start
with ``lambda in [1e-6, 1e-4, ..., 1e6]`` and repeatedly halve the interval
around the best value down to 8 steps per decade. scikit-learn's ``C`` is
``1 / lambda`` (up to the sample-count scaling of the loss), so the same
search runs over ``C`` here. After selection the classifier is refit on
train + validation and scored on the test split.

Features: the paper used, for CLIP-ViT, the pooled feature *before* the
projection to the embedding space, unnormalised; OpenAI's README example
uses ``encode_image`` (projected), unnormalised. :func:`extract_features`
defaults to the projected ``encode_image`` embedding without normalisation;
``normalize=True`` gives the cosine-space features, and a ``feature_fn``
(e.g. a backbone built with ``out_type='pooled'``) gives the paper's.
"""
import warnings
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def extract_features(model,
                     dataloader,
                     normalize: bool = False,
                     feature_fn: Optional[Callable] = None
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Frozen image features and labels of a classification dataloader.

    Args:
        model (CLIPModel): Its ``data_preprocessor`` prepares each batch.
        dataloader (Iterable[dict]): mmengine-style batches
            (``inputs`` + ``data_samples`` carrying ``gt_label``).
        normalize (bool): L2-normalise the features. Defaults to False
            (see the module docstring).
        feature_fn (Callable, optional): ``images (B, 3, H, W) -> (B, D)``;
            defaults to ``model.encode_image``.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(N, D)`` float32 features and
        ``(N, )`` int64 labels.
    """
    was_training = model.training
    model.eval()
    feature_fn = feature_fn or model.encode_image
    feats, labels = [], []
    try:
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            out = feature_fn(data['inputs']).float()
            if normalize:
                out = F.normalize(out, dim=-1)
            feats.append(out.cpu().numpy())
            for ds in data['data_samples']:
                labels.append(int(torch.as_tensor(ds.gt_label).reshape(-1)[0]))
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError('extract_features got an empty dataloader.')
    return np.concatenate(feats), np.asarray(labels, dtype=np.int64)


def _fit(x, y, C: float, max_iter: int, seed: int,
         n_threads: Optional[int] = None):
    """One L-BFGS logistic regression, convergence warnings silenced (the
    paper caps iterations at 1000 on purpose)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits
    clf = LogisticRegression(
        C=C, solver='lbfgs', max_iter=max_iter, random_state=seed)
    # BLAS threads that outnumber free cores (torch's OpenMP pool next to
    # OpenBLAS's) made small fits 100x slower in tests; cap them on request.
    with warnings.catch_warnings(), threadpool_limits(limits=n_threads):
        warnings.simplefilter('ignore', ConvergenceWarning)
        clf.fit(x, y)
    return clf


def _split(x, y, val_fraction: float, seed: int):
    """Stratified hold-out when every class has >= 2 samples, else random."""
    from sklearn.model_selection import train_test_split
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    try:
        return train_test_split(
            x, y, test_size=val_fraction, random_state=seed,
            stratify=stratify)
    except ValueError:  # validation too small to hold every class
        return train_test_split(
            x, y, test_size=val_fraction, random_state=seed)


def linear_probe(train_feats,
                 train_labels,
                 test_feats,
                 test_labels,
                 val_fraction: float = 0.2,
                 Cs: Optional[Sequence[float]] = None,
                 steps_per_decade: int = 8,
                 max_iter: int = 1000,
                 seed: int = 0,
                 n_threads: Optional[int] = 1) -> Dict:
    """Fit a logistic-regression probe, choosing ``C`` on held-out data.

    Args:
        train_feats (np.ndarray): ``(N_train, D)`` features.
        train_labels (np.ndarray): ``(N_train, )`` int labels.
        test_feats (np.ndarray): ``(N_test, D)`` features.
        test_labels (np.ndarray): ``(N_test, )`` int labels.
        val_fraction (float): Fraction of the training set held out (class
            stratified) to choose ``C``. Defaults to 0.2.
        Cs (Sequence[float], optional): An explicit grid of ``C`` values.
            None runs the paper's parametric binary search over
            ``C in [1e-6, 1e6]`` (see the module docstring). Defaults to None.
        steps_per_decade (int): Final resolution of the binary search.
            Defaults to 8 (the paper's).
        max_iter (int): L-BFGS iterations. Defaults to 1000.
        seed (int): Seed of the validation split. Defaults to 0.
        n_threads (int, optional): BLAS / OpenMP threads per fit; None keeps
            the libraries' default. Defaults to 1, much faster for probes of
            up to ~10k samples (the many small fits of the sweep are
            dominated by threading overhead); raise it for large splits.

    Returns:
        dict: ``top1`` (test accuracy, %), ``C`` (chosen), ``val_top1``
        (validation accuracy of the chosen ``C``, %), ``sweep`` (list of
        ``(C, val_top1)`` evaluated, ascending ``C``) and ``classifier``
        (the refit ``LogisticRegression``).
    """
    x, y = np.asarray(train_feats), np.asarray(train_labels)
    x_tr, x_val, y_tr, y_val = _split(x, y, val_fraction, seed)
    scores: Dict[float, float] = {}

    def score(log_c: float) -> float:
        # Keyed by rounded log10 C so the search never refits a C twice.
        key = round(log_c, 6)
        if key not in scores:
            clf = _fit(x_tr, y_tr, 10.0**key, max_iter, seed, n_threads)
            scores[key] = float((clf.predict(x_val) == y_val).mean() * 100)
        return scores[key]

    def best() -> float:
        # Highest accuracy; ties go to the smallest C (most regularised).
        return max(scores, key=lambda k: (scores[k], -k))

    if Cs is not None:
        for c in Cs:
            score(float(np.log10(c)))
    else:
        step = 2.0
        for log_c in np.arange(-6, 6.5, step):
            score(float(log_c))
        while step > 1.0 / steps_per_decade + 1e-9:
            step /= 2
            centre = best()
            for log_c in (centre - step, centre + step):
                if -6 - 1e-9 <= log_c <= 6 + 1e-9:
                    score(log_c)
    log_c = best()
    clf = _fit(x, y, 10.0**log_c, max_iter, seed, n_threads)
    top1 = float((clf.predict(np.asarray(test_feats)) ==
                  np.asarray(test_labels)).mean() * 100)
    return dict(
        top1=top1,
        C=10.0**log_c,
        val_top1=scores[log_c],
        sweep=[(10.0**k, v) for k, v in sorted(scores.items())],
        classifier=clf)
