"""clip_benchmark's zero-shot classification metrics.

As ``clip_benchmark/metrics/zeroshot_classification.py`` (1.6.2) defines
them: logits are ``100 * normalised image features @ classifier``;
``acc1`` / ``acc5`` are the fractions (not %) of samples whose label is
among the ``k`` highest logits (``acc5`` is NaN below 5 classes);
``mean_per_class_recall`` is scikit-learn's ``balanced_accuracy_score`` of
the arg-max: the mean over the classes that occur in the labels of the
fraction of their samples predicted right.
"""
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: clip_benchmark's fixed logit multiplier (OpenAI's trained value).
LOGIT_SCALE = 100.


def zero_shot_logits(features: np.ndarray,
                     classifier: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` logits of image features against a zero-shot classifier.

    Args:
        features (np.ndarray): ``(N, D)`` image embeddings (normalised
            here).
        classifier (Tensor): ``(D, C)`` normalised class embeddings.

    Returns:
        Tensor: ``(N, C)`` float32.
    """
    feats = F.normalize(torch.from_numpy(features).float(), dim=-1)
    return LOGIT_SCALE * feats @ classifier.float().cpu()


def classification_metrics(logits: torch.Tensor,
                           labels: np.ndarray) -> Dict[str, float]:
    """``acc1``, ``acc5`` and ``mean_per_class_recall`` as clip_benchmark.

    Args:
        logits (Tensor): ``(N, C)`` scores.
        labels (np.ndarray): ``(N, )`` int class indices.

    Returns:
        dict: The three metrics as fractions in [0, 1]; ``acc5`` NaN when
        there are fewer than 5 classes.
    """
    target = torch.as_tensor(labels, dtype=torch.long)
    num_classes = logits.shape[1]
    topk = (1, 5) if num_classes >= 5 else (1, )
    ranked = logits.topk(max(topk), dim=1).indices
    hits = ranked == target[:, None]
    # Counted, then divided in float64, as clip_benchmark's accuracy().
    accs = [hits[:, :k].any(dim=1).sum().item() / len(target) for k in topk]
    pred = logits.argmax(dim=1).numpy()
    recalls = [(pred[labels == c] == c).mean() for c in np.unique(labels)]
    return dict(acc1=accs[0],
                acc5=accs[1] if len(accs) > 1 else float('nan'),
                mean_per_class_recall=float(np.mean(recalls)))


def group_logits(logits: torch.Tensor,
                 groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Each label's logit as the highest of its classes' (WiSE-FT's
    ``project_logits`` of ObjectNet: an ObjectNet class scores as the best
    of the ImageNet classes it maps to).

    Args:
        logits (Tensor): ``(N, C)`` scores of the classifier's classes.
        groups (Sequence[Sequence[int]]): Per label, its columns of
            ``logits``.

    Returns:
        Tensor: ``(N, len(groups))``.
    """
    return torch.stack(
        [logits[:, list(columns)].max(dim=1).values for columns in groups],
        dim=1)
