"""transformers ``CLIPModel`` -> mmclip.

Differences to undo:

- q/k/v are three ``nn.Linear`` (``self_attn.{q,k,v}_proj``); mmclip packs
  them into ``attn.in_proj_weight``/``in_proj_bias`` in q, k, v order, as
  ``nn.MultiheadAttention`` does.
- The projections are bias-free ``nn.Linear`` with ``(out, in)`` weights;
  mmclip (like OpenAI) stores ``(in, out)`` matrices: transpose.
- Names: ``pre_layrnorm`` (sic), ``post_layernorm``, ``layer_norm1/2``,
  ``mlp.fc1/fc2``, ``final_layer_norm``.
- The activation, head counts and LayerNorm epsilon live in ``config.json``
  (:func:`hf_tower_settings`), not in the weights.
"""
from typing import Dict, Optional

import torch

from .common import (ConversionError, Rule, apply_rules, check_unknown,
                     prefixed, transpose)

_QKV_SUFFIX = ('.q', '.k', '.v')
_BLOCK_RULES = [
    Rule(r'encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.weight',
         r'transformer.resblocks.\1.attn.in_proj_weight.\2'),
    Rule(r'encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.bias',
         r'transformer.resblocks.\1.attn.in_proj_bias.\2'),
    Rule(r'encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)',
         r'transformer.resblocks.\1.attn.out_proj.\2'),
    Rule(r'encoder\.layers\.(\d+)\.layer_norm([12])\.(weight|bias)',
         r'transformer.resblocks.\1.ln_\2.\3'),
    Rule(r'encoder\.layers\.(\d+)\.mlp\.fc1\.(weight|bias)',
         r'transformer.resblocks.\1.mlp.c_fc.\2'),
    Rule(r'encoder\.layers\.(\d+)\.mlp\.fc2\.(weight|bias)',
         r'transformer.resblocks.\1.mlp.c_proj.\2'),
]
VISION_RULES = [
    Rule(r'embeddings\.class_embedding', 'class_embedding'),
    Rule(r'embeddings\.patch_embedding\.weight', 'conv1.weight'),
    Rule(r'embeddings\.position_embedding\.weight', 'positional_embedding'),
    Rule(r'pre_layrnorm\.(weight|bias)', r'ln_pre.\1'),
    Rule(r'post_layernorm\.(weight|bias)', r'ln_post.\1'),
] + _BLOCK_RULES
TEXT_RULES = [
    Rule(r'embeddings\.token_embedding\.weight', 'token_embedding.weight'),
    Rule(r'embeddings\.position_embedding\.weight', 'positional_embedding'),
    Rule(r'final_layer_norm\.(weight|bias)', r'ln_final.\1'),
] + _BLOCK_RULES
RULES = (
    prefixed('vision_model.', 'backbone.', VISION_RULES) +
    prefixed('text_model.', 'text_encoder.', TEXT_RULES) + [
        Rule('visual_projection.weight', 'backbone.proj', transpose),
        Rule('text_projection.weight', 'text_encoder.text_projection',
             transpose),
        Rule('logit_scale', 'logit_scale'),
    ])
# transformers' ``hidden_act`` -> mmclip activation type
HF_ACTIVATIONS = {'quick_gelu': 'QuickGELU', 'gelu': 'GELU'}


def _fuse_qkv(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Concatenate the ``<key>.q/.k/.v`` pieces into ``<key>`` (q, k, v)."""
    out = {}
    for key, value in state_dict.items():
        if not key.endswith(_QKV_SUFFIX):
            out[key] = value
        elif key.endswith('.q'):
            base = key[:-2]
            parts = [state_dict.get(base + s) for s in _QKV_SUFFIX]
            if any(p is None for p in parts):
                raise ConversionError(
                    f'{base}: the checkpoint lacks one of q_proj/k_proj/'
                    'v_proj; it is truncated.')
            out[base] = torch.cat(parts, dim=0)
    return out


def convert_hf(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Convert a transformers ``CLIPModel`` (or ``CLIPVisionModelWith
    Projection``) state dict to mmclip's keys.

    Args:
        state_dict (dict[str, Tensor]): ``vision_model.*``, ``text_model.*``,
            ``visual_projection.weight``, ``text_projection.weight``,
            ``logit_scale``.

    Returns:
        dict[str, Tensor]: mmclip weights (q/k/v packed, projections
        transposed).
    """
    out, unknown = apply_rules(state_dict, RULES)
    check_unknown(unknown, 'transformers CLIP')
    return _fuse_qkv(out)


def _tower_config(cfg: dict, tower: str) -> Optional[dict]:
    """The ``vision_config``/``text_config`` of a ``CLIPConfig``, or the
    config itself when it is a single-tower ``clip_<tower>_model`` one."""
    sub = cfg.get(f'{tower}_config')
    if isinstance(sub, dict):
        return sub
    return cfg if cfg.get('model_type') == f'clip_{tower}_model' else None


def hf_tower_settings(cfg: dict) -> Dict[str, dict]:
    """Read what the weights do not carry from an HF ``config.json``.

    Args:
        cfg (dict): The parsed ``config.json`` of a transformers CLIP model.

    Returns:
        dict: ``{'vision': {...}, 'text': {...}}`` (towers absent from the
        config are left out), each with ``act_type`` (``'QuickGELU'`` or
        ``'GELU'``), ``num_heads``, ``layer_norm_eps`` and, for text,
        ``eot_token_id`` (``None`` when transformers pools at the arg-max
        id, i.e. for the legacy ``eos_token_id == 2``).
    """
    settings = {}
    for tower in ('vision', 'text'):
        sub = _tower_config(cfg, tower)
        if sub is None:
            continue
        act = sub.get('hidden_act', 'quick_gelu')
        if act not in HF_ACTIVATIONS:
            raise ConversionError(
                f'config.json: {tower} hidden_act={act!r} has no mmclip '
                f'equivalent (supported: {list(HF_ACTIVATIONS)}).')
        item = dict(
            act_type=HF_ACTIVATIONS[act],
            num_heads=sub.get('num_attention_heads'),
            layer_norm_eps=float(sub.get('layer_norm_eps', 1e-5)))
        if tower == 'text':
            eos = sub.get('eos_token_id', 2)
            # transformers pools at argmax(ids) for the old eos_token_id=2
            # and at the first eos_token_id otherwise; both give OpenAI's EOT
            # (49407, the largest id) for OpenAI-tokenized text.
            item['eot_token_id'] = None if eos in (2, None) else int(eos)
        settings[tower] = item
    return settings
