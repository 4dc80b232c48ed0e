"""transformers ``CLIPModel`` and ``CLIPForImageClassification`` <-> mmclip.

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
- ``CLIPForImageClassification`` averages the patch tokens of the last
  block's output, never running ``post_layernorm``, and classifies them with
  ``classifier`` (an ``nn.Linear``): in mmclip an ``ImageClassifier`` with
  ``CLIPVisionTransformer(pool_type='avg', final_norm=False,
  out_channels=0)`` and a ``LinearClsHead`` (``head.fc``).

The names are one table per tower (:data:`VISION_NAMES`, :data:`TEXT_NAMES`)
that gives the rules of both directions
(:func:`~mmclip.converters.common.template_rules`); the export to
transformers is :mod:`mmclip.converters.hf_export`.
"""
from typing import Dict, Optional

import torch

from .common import (ConversionError, Rule, apply_rules, check_unknown,
                     prefixed, template_rules, transpose)

_QKV_SUFFIX = ('.q', '.k', '.v')
# (transformers name, mmclip name) of one block, relative to the tower; the
# q/k/v projections become pieces of in_proj_* (see _fuse_qkv).
_BLOCK_NAMES = [
    ('encoder.layers.{n}.self_attn.{qkv}_proj.{w}',
     'transformer.resblocks.{n}.attn.in_proj_{w}.{qkv}'),
    ('encoder.layers.{n}.self_attn.out_proj.{w}',
     'transformer.resblocks.{n}.attn.out_proj.{w}'),
    ('encoder.layers.{n}.layer_norm{i}.{w}',
     'transformer.resblocks.{n}.ln_{i}.{w}'),
    ('encoder.layers.{n}.mlp.fc1.{w}',
     'transformer.resblocks.{n}.mlp.c_fc.{w}'),
    ('encoder.layers.{n}.mlp.fc2.{w}',
     'transformer.resblocks.{n}.mlp.c_proj.{w}'),
]
VISION_NAMES = [
    ('embeddings.class_embedding', 'class_embedding'),
    ('embeddings.patch_embedding.weight', 'conv1.weight'),
    ('embeddings.position_embedding.weight', 'positional_embedding'),
    ('pre_layrnorm.{w}', 'ln_pre.{w}'),
    ('post_layernorm.{w}', 'ln_post.{w}'),
] + _BLOCK_NAMES
TEXT_NAMES = [
    ('embeddings.token_embedding.weight', 'token_embedding.weight'),
    ('embeddings.position_embedding.weight', 'positional_embedding'),
    ('final_layer_norm.{w}', 'ln_final.{w}'),
] + _BLOCK_NAMES
# CLIPForImageClassification's linear classifier <-> LinearClsHead's.
CLASSIFIER_NAMES = [('classifier.{w}', 'head.fc.{w}')]
RULES = (
    prefixed('vision_model.', 'backbone.', template_rules(VISION_NAMES)) +
    prefixed('text_model.', 'text_encoder.', template_rules(TEXT_NAMES)) + [
        Rule('visual_projection.weight', 'backbone.proj', transpose),
        Rule('text_projection.weight', 'text_encoder.text_projection',
             transpose),
        Rule('logit_scale', 'logit_scale'),
    ])
CLASSIFIER_RULES = (
    prefixed('vision_model.', 'backbone.', template_rules(VISION_NAMES)) +
    template_rules(CLASSIFIER_NAMES))
# Weights of CLIPForImageClassification its logits never use.
UNUSED_CLASSIFIER_PREFIX = 'vision_model.post_layernorm.'
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
    if 'classifier.weight' in state_dict:
        raise ConversionError(
            'This is a transformers CLIPForImageClassification (vision_model.*'
            ' and classifier.*), not a CLIPModel: convert it with --format '
            'hf_cls (or --format auto) into an mmclip ImageClassifier.')
    out, unknown = apply_rules(state_dict, RULES)
    check_unknown(unknown, 'transformers CLIP')
    return _fuse_qkv(out)


def convert_hf_classifier(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Convert a transformers ``CLIPForImageClassification`` state dict.

    ``vision_model.post_layernorm`` is left out: the classifier's logits
    never use it, and the mmclip backbone that computes them has no
    ``ln_post`` (``final_norm=False``).

    Args:
        state_dict (dict[str, Tensor]): ``vision_model.*`` and
            ``classifier.weight``/``classifier.bias``.

    Returns:
        dict[str, Tensor]: ``backbone.*`` (q/k/v packed) and ``head.fc.*``.
    """
    used = {
        k: v
        for k, v in state_dict.items()
        if not k.startswith(UNUSED_CLASSIFIER_PREFIX)
    }
    out, unknown = apply_rules(used, CLASSIFIER_RULES)
    check_unknown(unknown, 'transformers CLIPForImageClassification')
    return _fuse_qkv(out)


def split_qkv(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Undo :func:`_fuse_qkv`: ``<key>`` -> ``<key>.q/.k/.v`` for every
    packed ``attn.in_proj_weight``/``attn.in_proj_bias``."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith(('attn.in_proj_weight', 'attn.in_proj_bias')):
            # cloned: the pieces must not share storage (safetensors)
            for suffix, part in zip(_QKV_SUFFIX, value.chunk(3, dim=0)):
                out[key + suffix] = part.clone()
        else:
            out[key] = value
    return out


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
