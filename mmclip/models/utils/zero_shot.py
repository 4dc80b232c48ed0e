"""Zero-shot classifiers built from class names and prompt templates, and
the multiplier of their logits.

Names: ``logit_scale`` is always the model's learnable *log* temperature
(as in open_clip); ``scale`` is the multiplier of the cosine similarities,
a number or ``'learned'`` (``logit_scale.exp()``), see :func:`resolve_scale`.
"""
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F

#: What ``scale`` arguments take: a multiplier, or ``'learned'``.
Scale = Union[float, str]

#: Why ``logit_scale`` is no longer a multiplier's name (deprecation hint).
SCALE_RENAMED = ('logit_scale names the model\'s log temperature only; the '
                 'multiplier of the similarities is scale.')


def check_scale(scale: Scale) -> Scale:
    """``scale`` if it is a number or ``'learned'``, else a ``ValueError``
    (raised when a head is built, not at its first prediction)."""
    if isinstance(scale, str) and scale != 'learned':
        raise ValueError(f"scale must be a number or 'learned', got "
                         f'{scale!r}.')
    return scale if isinstance(scale, str) else float(scale)


def resolve_scale(scale: Scale,
                  logit_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The multiplier of cosine similarities in zero-shot logits
    (``logits = multiplier * img @ classifier``).

    Args:
        scale (float | str): A number (100 for OpenAI's weights) or
            ``'learned'``.
        logit_scale (Tensor, optional): The model's scalar log temperature;
            needed with ``'learned'``. Defaults to None.

    Returns:
        Tensor: A float32 scalar without gradient: ``scale``, or
        ``logit_scale.exp()`` for ``'learned'`` (on its device).
    """
    scale = check_scale(scale)
    if scale != 'learned':
        return torch.tensor(scale, dtype=torch.float32)
    if logit_scale is None:
        raise ValueError(
            "scale='learned' needs the model's logit_scale: pass "
            'predict(..., logit_scale=...) or set scale to a number (100 for '
            'OpenAI weights).')
    return logit_scale.detach().float().exp().reshape(())


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
