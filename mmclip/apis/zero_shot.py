"""Zero-shot classification of images with class names and templates."""
from typing import Dict, Sequence

import numpy as np
import torch

from mmclip.models.utils import build_zero_shot_classifier
from .preprocess import ImageLike, preprocess_images


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
        Tensor: ``(N, C)`` softmax over ``logit_scale.exp() * cos sim``.
    """
    weights = build_zero_shot_classifier(model, classnames, templates)
    scale = model.logit_scale.exp()
    probs = []
    for i in range(0, len(images), batch_size):
        x = preprocess_images(model, images[i:i + batch_size])
        img = model.encode_image(x, normalize=True).float()
        probs.append((scale * img @ weights).softmax(dim=-1).cpu())
    return torch.cat(probs)


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
