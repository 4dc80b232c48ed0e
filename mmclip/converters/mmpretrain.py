"""mmpretrain CLIP checkpoints -> mmclip.

Two layouts exist in mmpretrain 1.x:

- ``mmpretrain_cls``: the CLIP image towers fine-tuned for classification
  (``configs/clip/vit-*_pt-64xb64_in1k*.py``, converted from timm's
  ``vit_*_clip_*.{openai,laion2b}_ft_*``): an ``ImageClassifier`` with
  ``VisionTransformer(pre_norm=True)`` (``backbone.*``), no neck (or a
  ``CLIPProjection`` neck, ``neck.proj``) and a ``VisionTransformerClsHead``
  (``head.layers.head.*``). There is no text tower: only the image tower is
  converted, and the classifier head is kept verbatim under ``head.*`` so
  the file also loads into ``ImageClassifier(backbone=<mmclip
  CLIPVisionTransformer>, head=VisionTransformerClsHead(...))``.
- ``mmpretrain_clip``: the zero-shot ``CLIP``/``CLIPZeroShot`` model
  (``configs/clip/clip_vit-*_zeroshot-cls_*.py``): image tower under
  ``visual.*`` in mmpretrain's ViT names, its projection in
  ``visual_proj.proj`` and OpenAI's text tower at the top level.

mmpretrain's ViT names map to OpenAI's one to one: ``pre_norm`` -> ``ln_pre``,
``layers.N.{ln1, attn.qkv, attn.proj, ln2, ffn.layers.0.0, ffn.layers.1}`` ->
``resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc,
mlp.c_proj}``, the final ``ln1`` -> ``ln_post``; ``qkv`` is packed in the same
q, k, v order as ``in_proj_weight``.
"""
from typing import Dict, Optional

import torch

from .common import (ConversionError, Rule, apply_rules, check_unknown,
                     prefixed, squeeze_leading)
from .openai import TEXT_RULES

VIT_RULES = [
    Rule(r'cls_token', 'class_embedding', squeeze_leading),
    Rule(r'pos_embed', 'positional_embedding', squeeze_leading),
    Rule(r'patch_embed\.projection\.weight', 'conv1.weight'),
    Rule(r'pre_norm\.(weight|bias)', r'ln_pre.\1'),
    Rule(r'layers\.(\d+)\.ln([12])\.(weight|bias)',
         r'transformer.resblocks.\1.ln_\2.\3'),
    Rule(r'layers\.(\d+)\.attn\.qkv\.(weight|bias)',
         r'transformer.resblocks.\1.attn.in_proj_\2'),
    Rule(r'layers\.(\d+)\.attn\.proj\.(weight|bias)',
         r'transformer.resblocks.\1.attn.out_proj.\2'),
    Rule(r'layers\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)',
         r'transformer.resblocks.\1.mlp.c_fc.\2'),
    Rule(r'layers\.(\d+)\.ffn\.layers\.1\.(weight|bias)',
         r'transformer.resblocks.\1.mlp.c_proj.\2'),
    Rule(r'ln1\.(weight|bias)', r'ln_post.\1'),
]
# LayerNorm epsilon of mmpretrain's VisionTransformer (its default norm_cfg,
# kept by every CLIP config); OpenAI and mmclip use 1e-5.
MMPRETRAIN_VIT_LN_EPS = 1e-6


def _check_clip_vit(state_dict: Dict[str, torch.Tensor], prefix: str):
    """Refuse mmpretrain ViTs that are not CLIP towers, with the reason."""
    if prefix + 'patch_embed.projection.bias' in state_dict or \
            prefix + 'pre_norm.weight' not in state_dict:
        raise ConversionError(
            f'{prefix}* is an mmpretrain VisionTransformer without pre_norm '
            '(its patch embedding has a bias or there is no pre_norm): a '
            'plain ViT, not a CLIP image tower. Only checkpoints of '
            'VisionTransformer(pre_norm=True) can be converted.')
    if prefix + 'ln2.weight' in state_dict:
        raise ConversionError(
            f"{prefix}* was built with out_type='avg_featmap' (it has an "
            'extra ln2 after pooling), which mmclip has no place for.')


def convert_mmpretrain_cls(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Convert an mmpretrain ``ImageClassifier`` with a CLIP ViT.

    Args:
        state_dict (dict[str, Tensor]): ``backbone.*``, optionally
            ``neck.proj`` (``CLIPProjection``) and ``head.*``.

    Returns:
        dict[str, Tensor]: ``backbone.*`` in mmclip's names and ``head.*``
        unchanged (mmpretrain's head names).
    """
    _check_clip_vit(state_dict, 'backbone.')
    rules = prefixed('backbone.', 'backbone.', VIT_RULES) + [
        Rule(r'neck\.proj', 'backbone.proj'),
        Rule(r'(head\.[A-Za-z0-9_.]+)', r'\1'),
    ]
    out, unknown = apply_rules(state_dict, rules)
    check_unknown(unknown, 'mmpretrain ImageClassifier')
    return out


def convert_mmpretrain_clip(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Convert mmpretrain's zero-shot ``CLIP``/``CLIPZeroShot`` model.

    Args:
        state_dict (dict[str, Tensor]): ``visual.*``, ``visual_proj.proj``,
            ``transformer.*``, ``token_embedding.weight``,
            ``positional_embedding``, ``ln_final.*``, ``text_projection``,
            ``logit_scale``.

    Returns:
        dict[str, Tensor]: mmclip weights of both towers.
    """
    _check_clip_vit(state_dict, 'visual.')
    rules = (
        prefixed('visual.', 'backbone.', VIT_RULES) +
        [Rule(r'visual_proj\.proj', 'backbone.proj')] +
        prefixed('', 'text_encoder.', TEXT_RULES) +
        [Rule('logit_scale', 'logit_scale')])
    out, unknown = apply_rules(state_dict, rules)
    check_unknown(unknown, "mmpretrain's CLIP")
    return out


def describe_head(state_dict: Dict[str, torch.Tensor]) -> Optional[dict]:
    """Describe the kept mmpretrain classifier head as a config dict.

    Args:
        state_dict (dict[str, Tensor]): Converted weights with ``head.*``.

    Returns:
        dict | None: e.g. ``dict(type='VisionTransformerClsHead',
        num_classes=1000, in_channels=768, hidden_dim=None)``; ``type`` is
        None for heads other than ``VisionTransformerClsHead`` and
        ``LinearClsHead``; None when there is no head.
    """
    if not any(k.startswith('head.') for k in state_dict):
        return None
    if 'head.layers.head.weight' in state_dict:
        weight = state_dict['head.layers.head.weight']
        pre = state_dict.get('head.layers.pre_logits.weight')
        return dict(
            type='VisionTransformerClsHead',
            num_classes=int(weight.shape[0]),
            in_channels=int(weight.shape[1] if pre is None else pre.shape[1]),
            hidden_dim=None if pre is None else int(pre.shape[0]))
    if 'head.fc.weight' in state_dict:
        weight = state_dict['head.fc.weight']
        return dict(
            type='LinearClsHead',
            num_classes=int(weight.shape[0]),
            in_channels=int(weight.shape[1]))
    return dict(type=None)
