"""Read a CLIP architecture off the tensor shapes of an mmclip state dict.

Everything but the head count and the activation is in the shapes:

- image tower: width and patch size from ``conv1.weight`` ``(C, 3, P, P)``,
  depth from the ``resblocks.N`` indices, MLP width from ``mlp.c_fc``, image
  size from the position grid (``positional_embedding`` is
  ``(1 + (S / P)^2, C)``), embedding dim from ``proj`` ``(C, D)`` (0 without);
- text tower: vocabulary and width from ``token_embedding.weight``, context
  length from ``positional_embedding``, embedding dim from
  ``text_projection``.

Head counts are not stored anywhere in OpenAI/open_clip/mmpretrain weights.
OpenAI's code uses ``heads = width // 64`` for both towers; open_clip does the
same except for its largest image towers, whose head width is 80 (ViT-H,
1280), 88 (ViT-g, 1408), 104 (ViT-bigG, 1664) and 112 (1792): 16 heads each
(:data:`VISION_HEADS_BY_WIDTH`). A config (transformers, open_clip's
``open_clip_config.json``) or an explicit override takes precedence.
"""
import re
from typing import Dict, Optional, Tuple

import torch

from .common import ConversionError

VISION_HEADS_BY_WIDTH = {1280: 16, 1408: 16, 1664: 16, 1792: 16}
_BLOCK_KEYS = ('ln_1.weight', 'ln_1.bias', 'attn.in_proj_weight',
               'attn.in_proj_bias', 'attn.out_proj.weight',
               'attn.out_proj.bias', 'ln_2.weight', 'ln_2.bias',
               'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight',
               'mlp.c_proj.bias')
_VISION_KEYS = ('class_embedding', 'positional_embedding', 'conv1.weight',
                'ln_pre.weight', 'ln_pre.bias')
_TEXT_KEYS = ('token_embedding.weight', 'positional_embedding',
              'ln_final.weight', 'ln_final.bias', 'text_projection')


def default_num_heads(width: int, tower: str) -> Tuple[int, str]:
    """Head count of an OpenAI/open_clip tower of ``width`` channels.

    Args:
        width (int): Token width.
        tower (str): ``'vision'`` or ``'text'``.

    Returns:
        tuple[int, str]: The head count and how it was chosen.
    """
    if tower == 'vision' and width in VISION_HEADS_BY_WIDTH:
        heads = VISION_HEADS_BY_WIDTH[width]
        return heads, (f"open_clip's head width {width // heads} for image "
                       f'towers of width {width}')
    if width % 64:
        raise ConversionError(
            f'The {tower} tower has width {width}, not a multiple of 64, so '
            'its head count cannot be guessed; pass it explicitly '
            f'(--{tower}-heads).')
    return width // 64, 'width // 64 (OpenAI/open_clip head width 64)'


def _count_blocks(sd: Dict[str, torch.Tensor], prefix: str) -> int:
    """Number of ``resblocks``, checking that every block is complete."""
    regex = re.compile(re.escape(prefix) + r'transformer\.resblocks\.(\d+)\.')
    indices = {int(m.group(1)) for k in sd for m in [regex.match(k)] if m}
    if not indices:
        raise ConversionError(f'{prefix}* has no transformer blocks.')
    layers = max(indices) + 1
    missing = [
        f'{prefix}transformer.resblocks.{i}.{name}' for i in range(layers)
        for name in _BLOCK_KEYS
        if f'{prefix}transformer.resblocks.{i}.{name}' not in sd
    ]
    if missing:
        raise ConversionError(
            f'{len(missing)} block parameter(s) are missing, e.g. '
            f'{missing[:4]}; the checkpoint is truncated or its blocks are '
            'built differently (e.g. without q/k/v bias).')
    return layers


def _require(sd, prefix: str, names) -> None:
    missing = [prefix + n for n in names if prefix + n not in sd]
    if missing:
        raise ConversionError(f'Missing parameter(s) {missing}.')


def _mlp_ratio(sd, prefix: str, width: int) -> float:
    """``hidden / width``, nudged so that ``int(width * ratio) == hidden``
    (the towers compute the hidden width that way; e.g. ViT-g's
    6144 / 1408)."""
    hidden = sd[prefix + 'transformer.resblocks.0.mlp.c_fc.weight'].shape[0]
    ratio = hidden / width
    if int(width * ratio) != hidden:
        ratio = (hidden + 0.5) / width
    return ratio


def infer_vision_arch(sd: Dict[str, torch.Tensor],
                      num_heads: Optional[int] = None,
                      prefix: str = 'backbone.') -> dict:
    """Architecture of the image tower of a converted state dict.

    Args:
        sd (dict[str, Tensor]): mmclip-named weights.
        num_heads (int, optional): Known head count (config or user);
            ``None`` applies :func:`default_num_heads`. Defaults to None.
        prefix (str): Key prefix of the tower. Defaults to ``'backbone.'``.

    Returns:
        dict: ``embed_dims``, ``num_layers``, ``num_heads``,
        ``num_heads_source``, ``mlp_ratio``, ``patch_size``, ``img_size``,
        ``grid_size``, ``out_channels`` (0: no projection), ``final_norm``
        (whether there is an ``ln_post``), plain types.
    """
    _require(sd, prefix, _VISION_KEYS)
    final_norm = prefix + 'ln_post.weight' in sd
    if final_norm:
        _require(sd, prefix, ('ln_post.bias', ))
    width, in_chans, ph, pw = sd[prefix + 'conv1.weight'].shape
    if ph != pw or in_chans != 3:
        raise ConversionError(
            f'{prefix}conv1.weight has shape '
            f'{(int(width), int(in_chans), int(ph), int(pw))}; mmclip '
            'expects square patches of 3-channel images.')
    tokens = sd[prefix + 'positional_embedding'].shape[0]
    grid = int(round((tokens - 1)**0.5))
    if grid * grid != tokens - 1:
        raise ConversionError(
            f'{prefix}positional_embedding has {tokens} positions, not '
            '1 + a square grid; only square inputs with one class token are '
            'supported.')
    proj = sd.get(prefix + 'proj')
    return dict(
        _transformer_arch(sd, prefix, width, num_heads, 'vision'),
        patch_size=int(ph),
        img_size=int(grid * ph),
        grid_size=int(grid),
        out_channels=0 if proj is None else int(proj.shape[1]),
        final_norm=final_norm)


def infer_text_arch(sd: Dict[str, torch.Tensor],
                    num_heads: Optional[int] = None,
                    prefix: str = 'text_encoder.') -> Optional[dict]:
    """Architecture of the text tower, or None if there is none.

    Args:
        sd (dict[str, Tensor]): mmclip-named weights.
        num_heads (int, optional): Known head count; ``None`` uses
            ``width // 64``. Defaults to None.
        prefix (str): Key prefix. Defaults to ``'text_encoder.'``.

    Returns:
        dict | None: ``embed_dims``, ``num_layers``, ``num_heads``,
        ``num_heads_source``, ``mlp_ratio``, ``vocab_size``,
        ``context_length``, ``out_channels``.
    """
    if not any(k.startswith(prefix) for k in sd):
        return None
    _require(sd, prefix, _TEXT_KEYS)
    vocab, width = sd[prefix + 'token_embedding.weight'].shape
    return dict(
        _transformer_arch(sd, prefix, width, num_heads, 'text'),
        vocab_size=int(vocab),
        context_length=int(sd[prefix + 'positional_embedding'].shape[0]),
        out_channels=int(sd[prefix + 'text_projection'].shape[1]))


def _transformer_arch(sd: Dict[str, torch.Tensor], prefix: str, width: int,
                      num_heads: Optional[int], tower: str) -> dict:
    """What both towers' blocks share: ``embed_dims``, ``num_layers``,
    ``num_heads`` (``width // 64`` when not known) with
    ``num_heads_source``, and ``mlp_ratio``."""
    source = 'checkpoint config or user'
    if num_heads is None:
        num_heads, source = default_num_heads(width, tower)
    return dict(
        embed_dims=int(width),
        num_layers=_count_blocks(sd, prefix),
        num_heads=int(num_heads),
        num_heads_source=source,
        mlp_ratio=_mlp_ratio(sd, prefix, width))


def _arch_kwargs(arch: dict) -> dict:
    kwargs = {k: arch[k] for k in ('embed_dims', 'num_layers', 'num_heads')}
    if arch['mlp_ratio'] != 4:
        kwargs['mlp_ratio'] = arch['mlp_ratio']
    return kwargs


def build_model_cfg(vision: dict,
                    text: Optional[dict],
                    vision_act: str,
                    text_act: str,
                    eot_token_id: Optional[int] = None,
                    layer_norm_eps: Optional[dict] = None,
                    pool_type: str = 'cls_token') -> dict:
    """The tower configs of ``CLIPModel`` for an inferred architecture.

    Args:
        vision (dict): From :func:`infer_vision_arch`.
        text (dict, optional): From :func:`infer_text_arch`.
        vision_act (str): ``'QuickGELU'`` or ``'GELU'``.
        text_act (str): Same, for the text tower.
        eot_token_id (int, optional): Pooling id of the text tower.
        layer_norm_eps (dict, optional): ``{'vision': eps, 'text': eps}`` of
            the source model; set on a tower only when it differs from
            mmclip's default 1e-5.
        pool_type (str): How the image tower pools its tokens,
            ``'cls_token'`` (CLIP) or ``'avg'`` (transformers'
            ``CLIPForImageClassification``). Defaults to ``'cls_token'``.

    Returns:
        dict: ``vision_backbone`` and ``text_encoder`` (None without a text
        tower), ready for ``CLIPModel(**model_cfg, ...)``.
    """
    vision_cfg = dict(
        type='CLIPVisionTransformer',
        arch=_arch_kwargs(vision),
        img_size=vision['img_size'],
        patch_size=vision['patch_size'],
        out_channels=vision['out_channels'],
        act_cfg=dict(type=vision_act),
        pool_type=pool_type)
    if not vision.get('final_norm', True):
        vision_cfg['final_norm'] = False
    eps = layer_norm_eps or {}
    if eps.get('vision', 1e-5) != 1e-5:
        vision_cfg['layer_norm_eps'] = eps['vision']
    text_cfg = None
    if text is not None:
        text_cfg = dict(
            type='CLIPTextTransformer',
            arch=_arch_kwargs(text),
            vocab_size=text['vocab_size'],
            context_length=text['context_length'],
            out_channels=text['out_channels'],
            act_cfg=dict(type=text_act),
            eot_token_id=eot_token_id)
        if eps.get('text', 1e-5) != 1e-5:
            text_cfg['layer_norm_eps'] = eps['text']
    return dict(vision_backbone=vision_cfg, text_encoder=text_cfg)
