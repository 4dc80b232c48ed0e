"""OpenAI / open_clip state dicts -> mmclip.

mmclip's towers keep OpenAI's parameter names, so this is a prefix rename:
``visual.*`` -> ``backbone.*`` and the text tower (top-level in OpenAI's and
open_clip's ``CLIP``, under ``text.`` in open_clip's ``CustomTextCLIP``) ->
``text_encoder.*``. Anything else (ResNet towers, attention pooling, layer
scale, ``logit_bias``, timm/HF towers) is refused rather than dropped.
"""
from typing import Dict

import torch

from .common import (ConversionError, Rule, apply_rules, check_unknown,
                     prefixed, transpose)

_BLOCK = Rule(r'(transformer\.resblocks\.\d+\..+)', r'\1')
VISION_RULES = [
    Rule(r'(class_embedding|positional_embedding|proj|conv1\.weight)', r'\1'),
    Rule(r'(ln_pre|ln_post)\.(weight|bias)', r'\1.\2'),
    _BLOCK,
]
TEXT_RULES = [
    Rule(r'(token_embedding\.weight|positional_embedding|text_projection)',
         r'\1'),
    # open_clip's TextTransformer(proj_type='linear') stores an nn.Linear
    Rule(r'text_projection\.weight', 'text_projection', transpose),
    Rule(r'ln_final\.(weight|bias)', r'ln_final.\1'),
    _BLOCK,
]
# Keys only ResNet ("RN50", ...) image towers have.
_RESNET_KEYS = ('visual.layer1.0.conv1.weight',
                'visual.attnpool.positional_embedding')


def convert_openai(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename an OpenAI / open_clip ViT CLIP state dict to mmclip's keys.

    Args:
        state_dict (dict[str, Tensor]): OpenAI's ``model.state_dict()`` (also
            from a TorchScript archive) or open_clip's ``CLIP`` /
            ``CustomTextCLIP`` with its own ``TextTransformer``.

    Returns:
        dict[str, Tensor]: ``backbone.*``, ``text_encoder.*`` (when the
        checkpoint has a text tower) and ``logit_scale``.
    """
    if any(k in state_dict for k in _RESNET_KEYS):
        raise ConversionError(
            'This is a ResNet CLIP (RN50, RN101, RN50x4, ...): mmclip only '
            'implements the ViT image tower.')
    # open_clip's CustomTextCLIP nests the text tower under ``text.`` (the
    # temperature stays at the top level).
    text_prefix = 'text.' if 'text.token_embedding.weight' in state_dict \
        else ''
    rules = (
        prefixed('visual.', 'backbone.', VISION_RULES) +
        prefixed(text_prefix, 'text_encoder.', TEXT_RULES) +
        [Rule('logit_scale', 'logit_scale')])
    out, unknown = apply_rules(state_dict, rules)
    check_unknown(unknown, 'OpenAI/open_clip')
    return out
