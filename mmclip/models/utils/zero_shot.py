"""Zero-shot classifiers built from class names and prompt templates."""
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F


@torch.no_grad()
def build_zero_shot_classifier(encode_text: Callable[[Sequence[str]],
                                                     torch.Tensor],
                               classnames: Sequence[str],
                               templates: Sequence[str],
                               batch_size: int = 256,
                               progress: Optional[Callable[[int], None]] = None
                               ) -> torch.Tensor:
    """Text-embedding classifier, as in the CLIP paper's prompt ensembling.

    Every class gets the mean of its L2-normalised prompt embeddings
    (``template.format(classname)`` for each template), renormalised.

    Args:
        encode_text (callable): Embeds a list of strings into ``(N, D)``
            (normalised or not), e.g. ``CLIPModel.text_embedder()``.
        classnames (Sequence[str]): ``C`` class names.
        templates (Sequence[str]): ``T`` templates with one ``{}``.
        batch_size (int): Prompts per ``encode_text`` call. Defaults to 256.
        progress (callable, optional): Called after every ``encode_text``
            call with the number of prompts it embedded (e.g. a progress
            bar's ``update``); ``len(classnames) * len(templates)`` in total.
            Defaults to None.

    Returns:
        Tensor: ``(D, C)`` float32 weights; logits are
        ``scale * img @ weights``.
    """
    if not classnames or not templates:
        raise ValueError('build_zero_shot_classifier needs at least one class '
                         'name and one template.')
    bad = [t for t in templates if '{}' not in t]
    if bad:
        raise ValueError(f'Templates must contain "{{}}" for the class name: '
                         f'{bad[:3]}')
    prompts = [t.format(c) for c in classnames for t in templates]
    feats = []
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i:i + batch_size]
        feats.append(F.normalize(encode_text(chunk).float(), dim=-1))
        if progress is not None:
            progress(len(chunk))
    feats = torch.cat(feats).view(len(classnames), len(templates), -1)
    return F.normalize(feats.mean(1), dim=-1).t()
