"""Zero-shot classification of images with class names and templates."""
from typing import Dict, Sequence

import numpy as np
import torch

from .inference import inference_model
from .preprocess import ImageLike


@torch.no_grad()
def zero_shot_scores(model,
                     images: Sequence[ImageLike],
                     classnames: Sequence[str],
                     templates: Sequence[str] = ('a photo of a {}.', ),
                     batch_size: int = 64) -> torch.Tensor:
    """Class probabilities of every image.

    Args:
        model (CLIPModel): Model in eval mode.
        images (Sequence[str | np.ndarray | PIL.Image.Image]): Images.
        classnames (Sequence[str]): ``C`` class names.
        templates (Sequence[str]): Prompt templates with ``{}``.
        batch_size (int): Images per forward pass. Defaults to 64.

    Returns:
        Tensor: ``(N, C)`` softmax over ``logit_scale.exp() * cos sim``
        (see :func:`mmclip.apis.inference_model`, which this wraps).
    """
    results = inference_model(model, list(images), texts=list(classnames),
                              templates=list(templates),
                              batch_size=batch_size, progress=False)
    return torch.stack([torch.from_numpy(r['pred_scores']) for r in results])


def zero_shot_accuracy(model,
                       images: Sequence[ImageLike],
                       labels: Sequence[int],
                       classnames: Sequence[str],
                       templates: Sequence[str],
                       topk: Sequence[int] = (1, 5),
                       batch_size: int = 64) -> Dict[str, float]:
    """Top-k zero-shot accuracy (%) of ``images`` with ground-truth
    ``labels``.

    Returns:
        dict: ``{'top1': ..., 'top5': ...}`` for each ``k`` in ``topk``
        (``k`` capped at the number of classes).
    """
    probs = zero_shot_scores(model, images, classnames, templates, batch_size)
    labels = torch.as_tensor(np.asarray(labels))
    ranked = probs.argsort(dim=-1, descending=True)
    return {
        f'top{k}': 100. * (ranked[:, :min(k, probs.shape[1])] ==
                           labels[:, None]).any(-1).float().mean().item()
        for k in topk
    }
