"""Linear-probe evaluation of frozen image features (CLIP paper, App. A.3).

The CLIP paper fits scikit-learn's L-BFGS logistic regression (at most 1000
iterations) on frozen features, choosing the L2 strength ``lambda`` on a
validation split by a parametric binary search over ``[1e-6, 1e6]``: start
with ``lambda in [1e-6, 1e-4, ..., 1e6]`` and repeatedly halve the interval
around the best value down to 8 steps per decade. Equal validation
accuracies (common with good features) are decided here by the validation
cross-entropy. scikit-learn's ``C`` is
``1 / lambda`` (up to the sample-count scaling of the loss), so the same
search runs over ``C`` here. After selection the classifier is refit on
train + validation and scored on the test split.

Features: the paper used, for CLIP-ViT, the pooled feature *before* the
projection to the embedding space, unnormalised; OpenAI's README example
uses ``encode_image`` (projected), unnormalised.
:func:`extract_labelled_features` defaults to the image tower's output, the
projected embedding (a ``CLIPModel``'s ``encode_image``, an
``ImageClassifier``'s ``extract_feat``) without normalisation;
``normalize=True`` gives the cosine-space features, and a ``feature_fn``
(e.g. a backbone built with ``out_type='pooled'``) gives the paper's.
"""
import copy
import warnings
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmclip.models.pretrained import CheckpointMismatchError, load_pretrained

#: How to get a labelled split, said by every missing-label error.
LABELLED_DATA_HINT = (
    'A linear probe fits on labelled images: use dataloaders whose dataset '
    'gives class labels (gt_label), e.g. CsvClassificationDataset, '
    "mmpretrain's ImageNet / CustomDataset or ClassificationTextDataset; "
    'for the digits, configs/clip/clip_vit-tiny-p8_ft-1xb64-10e_digits-'
    "32px.py reads train.csv's label column (written by "
    'tools/dataset_converters/prepare_digits.py).')


class LinearProbeInputError(ValueError):
    """An input the linear probe cannot use (a split without labels, a
    checkpoint without a fitting image tower); the message names the fix."""


def check_labelled(dataset, name: str = 'the dataset') -> None:
    """Refuse a dataset whose samples carry no class label, before any
    feature is extracted.

    Args:
        dataset (BaseDataset): An mmengine dataset (its first data info is
            read; nothing is loaded).
        name (str): How to call it in the error, e.g. the config key.

    Raises:
        LinearProbeInputError: The first sample has no ``gt_label``.
    """
    if len(dataset) == 0:
        raise LinearProbeInputError(f'{name} is empty.')
    if 'gt_label' not in dataset.get_data_info(0):
        source = getattr(dataset, 'ann_file', '') or ''
        raise LinearProbeInputError(
            f'{name} ({type(dataset).__name__}'
            f'{" on " + source if source else ""}) has no class labels '
            f'(gt_label). {LABELLED_DATA_HINT}')


def load_image_tower(model: nn.Module, checkpoint: str) -> dict:
    """Load only the image tower (``backbone.*``) of ``checkpoint`` into
    ``model.backbone`` (:func:`~mmclip.models.utils.load_pretrained` with
    ``prefix='backbone.'``: nothing in the file is executed, and a tower
    that does not fit is refused before any weight is copied).

    CLIP checkpoints, their zero-shot / fine-tuned classifiers
    (``ImageClassifier``) and WiSE-FT outputs all name the image tower
    ``backbone.*``, so any of them serves a ``CLIPModel`` or an
    ``ImageClassifier`` config; text tower and heads are not needed for a
    linear probe and are left out.

    Args:
        model (nn.Module): Has a ``backbone`` (the image tower).
        checkpoint (str): An mmclip checkpoint file.

    Returns:
        dict: The checkpoint's ``meta``.

    Raises:
        LinearProbeInputError: The checkpoint has no ``backbone.*`` weights,
            is in another library's layout, or its tower does not fit the
            config's (the keys named).
    """
    try:
        return load_pretrained(model.backbone, checkpoint, prefix='backbone.')
    except CheckpointMismatchError as err:
        raise LinearProbeInputError(str(err)) from None


def image_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The image tower's embedding of preprocessed images.

    Args:
        model (nn.Module): A ``CLIPModel`` (``encode_image``) or an
            mmpretrain ``ImageClassifier`` (its ``extract_feat``'s last
            stage, the tower's projected embedding for a CLIP backbone).
        images (Tensor): ``(B, 3, H, W)``, as the model's data preprocessor
            outputs them.

    Returns:
        Tensor: ``(B, D)``.
    """
    if hasattr(model, 'encode_image'):
        return model.encode_image(images)
    return model.extract_feat(images)[-1]


@torch.no_grad()
def extract_labelled_features(model,
                              dataloader,
                              normalize: bool = False,
                              feature_fn: Optional[Callable] = None
                              ) -> Tuple[np.ndarray, np.ndarray]:
    """Frozen image features and labels of a classification dataloader.

    Args:
        model (CLIPModel | ImageClassifier): Its ``data_preprocessor``
            prepares each batch.
        dataloader (Iterable[dict]): mmengine-style batches
            (``inputs`` + ``data_samples`` carrying ``gt_label``).
        normalize (bool): L2-normalise the features. Defaults to False
            (see the module docstring).
        feature_fn (Callable, optional): ``images (B, 3, H, W) -> (B, D)``;
            defaults to :func:`image_features` of ``model``.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(N, D)`` float32 features and
        ``(N, )`` int64 labels.

    Raises:
        LinearProbeInputError: A sample has no ``gt_label``.
    """
    was_training = model.training
    model.eval()
    if feature_fn is None:
        def feature_fn(images):
            return image_features(model, images)
    feats, labels = [], []
    try:
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            for ds in data['data_samples']:
                if 'gt_label' not in ds:
                    raise LinearProbeInputError(
                        f'A sample ({ds.get("img_path", "?")}) has no '
                        f'class label (gt_label). {LABELLED_DATA_HINT}')
                labels.append(int(torch.as_tensor(ds.gt_label).reshape(-1)[0]))
            out = feature_fn(data['inputs']).float()
            if normalize:
                out = F.normalize(out, dim=-1)
            feats.append(out.cpu().numpy())
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError('extract_labelled_features got an empty dataloader.')
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
    from sklearn.metrics import log_loss
    x, y = np.asarray(train_feats), np.asarray(train_labels)
    x_tr, x_val, y_tr, y_val = _split(x, y, val_fraction, seed)
    scores: Dict[float, float] = {}
    losses: Dict[float, float] = {}

    def score(log_c: float) -> float:
        # Keyed by rounded log10 C so the search never refits a C twice.
        key = round(log_c, 6)
        if key not in scores:
            clf = _fit(x_tr, y_tr, 10.0**key, max_iter, seed, n_threads)
            scores[key] = float((clf.predict(x_val) == y_val).mean() * 100)
            losses[key] = log_loss(
                y_val, clf.predict_proba(x_val), labels=clf.classes_)
        return scores[key]

    def best() -> float:
        # Highest accuracy. Good features saturate it (every C from 1e-6 up
        # can score 100 % on validation), so ties go to the lowest
        # validation cross-entropy: a tiny C also gets every argmax right,
        # with near-uniform probabilities that refit unreliably (60 %
        # test top-1 where C=1e-2 gave 98 %, measured on the digits). Then
        # to the smallest C (most regularised).
        return max(scores, key=lambda k: (scores[k], -losses[k], -k))

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


def build_probe_dataloader(loader_cfg: dict,
                           pipeline: Sequence[dict],
                           batch_size: Optional[int] = None,
                           num_workers: Optional[int] = None,
                           seed: int = 0):
    """A config's dataloader rebuilt for feature extraction: with
    ``pipeline`` (the evaluation one: no augmentation, as in the paper), in
    order, nothing dropped.

    Args:
        loader_cfg (dict): A ``*_dataloader`` entry of a config.
        pipeline (Sequence[dict]): Replaces the dataset's pipeline.
        batch_size (int, optional): Replaces the config's batch size.
        num_workers (int, optional): Replaces the config's workers.
        seed (int): Seed of the workers. Defaults to 0.

    Returns:
        torch.utils.data.DataLoader
    """
    from mmengine.runner import Runner
    loader = copy.deepcopy(loader_cfg)
    loader['dataset']['pipeline'] = copy.deepcopy(list(pipeline))
    loader['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader.pop('batch_sampler', None)
    loader['drop_last'] = False
    loader['persistent_workers'] = False
    if batch_size:
        loader['batch_size'] = batch_size
    if num_workers is not None:
        loader['num_workers'] = num_workers
    return Runner.build_dataloader(loader, seed=seed)


def probe_dataloaders(model: nn.Module,
                      train_loader,
                      test_loaders: Dict[str, object],
                      normalize: bool = False,
                      **probe_kwargs) -> Dict:
    """Fit a linear probe on one split's frozen features and score it on
    several test splits (e.g. held-out and shifted data).

    Args:
        model (CLIPModel | ImageClassifier): The frozen model (see
            :func:`extract_labelled_features`).
        train_loader (Iterable[dict]): The labelled split to fit on; ``C``
            is chosen on a held-out part of it (see :func:`linear_probe`).
        test_loaders (dict[str, Iterable[dict]]): Name -> labelled split to
            score, at least one.
        normalize (bool): L2-normalise the features. Defaults to False.
        **probe_kwargs: ``val_fraction``, ``Cs``, ``max_iter``, ``seed``,
            ``n_threads`` of :func:`linear_probe`.

    Returns:
        dict: ``top1`` (name -> test accuracy, %), ``C``, ``val_top1``,
        ``sweep`` (see :func:`linear_probe`), ``num_samples`` (split name,
        ``'train'`` included -> count) and ``feature_dim``.
    """
    if not test_loaders:
        raise ValueError('probe_dataloaders needs at least one test split.')
    train = extract_labelled_features(model, train_loader,
                                      normalize=normalize)
    tests = {
        name: extract_labelled_features(model, loader, normalize=normalize)
        for name, loader in test_loaders.items()
    }
    first = next(iter(tests))
    res = linear_probe(*train, *tests[first], **probe_kwargs)
    classifier = res.pop('classifier')
    res['top1'] = {
        name: float((classifier.predict(x) == y).mean() * 100)
        for name, (x, y) in tests.items()
    }
    res['num_samples'] = dict(train=len(train[1]),
                              **{k: len(v[1]) for k, v in tests.items()})
    res['feature_dim'] = int(train[0].shape[1])
    return res
