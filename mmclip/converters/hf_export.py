"""mmclip classifiers -> transformers' ``CLIPForImageClassification``.

The inverse of the ``hf_cls`` conversion (:mod:`mmclip.converters.hf`): a
classifier of that layout (an mmpretrain ``ImageClassifier`` with
``CLIPVisionTransformer(pool_type='avg', final_norm=False,
out_channels=0)``, no neck, a ``LinearClsHead``) is written as a folder
``CLIPForImageClassification.from_pretrained`` loads: ``config.json``,
``model.safetensors`` and, when the classifier's preprocessing has an image
processor equivalent, ``preprocessor_config.json``. No other layout computes
what transformers' class does (e.g. mmclip's ``CLIPClsHead`` classifies the
normalised, projected embedding), so they are refused rather than exported
wrong.

``python tools/model_converters/mmclip_to_hf.py`` is its command line.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmpretrain.models import ImageClassifier, LinearClsHead
from mmpretrain.models.utils import QuickGELU

from mmclip.models import CLIPVisionTransformer
from .common import (ConversionError, apply_rules, prefixed, staged_files,
                     template_rules)
from .hf import (CLASSIFIER_NAMES, UNUSED_CLASSIFIER_PREFIX, VISION_NAMES,
                 split_qkv)

EXPORT_RULES = (
    prefixed('backbone.', 'vision_model.',
             template_rules(VISION_NAMES, reverse=True)) +
    template_rules(CLASSIFIER_NAMES, reverse=True))
EXPORTABLE = ("ImageClassifier(backbone=CLIPVisionTransformer("
              "pool_type='avg', final_norm=False, out_channels=0), no neck, "
              'head=LinearClsHead)')


def _layout_problems(model: nn.Module) -> List[str]:
    """How ``model`` differs from the exportable layout (empty: none)."""
    if not isinstance(model, ImageClassifier):
        return [f'it builds a {type(model).__name__}, not an '
                'ImageClassifier']
    backbone, problems = model.backbone, []
    if not isinstance(backbone, CLIPVisionTransformer):
        return [f'its backbone is a {type(backbone).__name__}']
    if backbone.pool_type != 'avg':
        problems.append(f"the backbone pools with {backbone.pool_type!r}, "
                        "not 'avg'")
    if backbone.ln_post is not None:
        problems.append('the backbone normalises its last tokens (ln_post; '
                        'final_norm=False has none)')
    if backbone.proj is not None:
        problems.append('the backbone projects its feature (out_channels=0 '
                        'has no projection)')
    if backbone.out_indices != (backbone.transformer.num_layers - 1, ) or \
            backbone.out_type not in ('proj', 'pooled'):
        problems.append('the backbone gives intermediate or token outputs')
    if model.with_neck:
        problems.append(f'it has a neck ({type(model.neck).__name__})')
    if type(model.head) is not LinearClsHead:
        problems.append(f'its head is a {type(model.head).__name__}')
    return problems


def check_exportable(model: nn.Module) -> None:
    """Refuse a model that transformers' ``CLIPForImageClassification``
    cannot reproduce, naming what differs and what exports.

    Raises:
        ConversionError: One message for all differences.
    """
    problems = _layout_problems(model)
    if problems:
        raise ConversionError(
            'The model cannot be exported to transformers\' '
            'CLIPForImageClassification: ' + '; '.join(problems) + '. Only '
            f'classifiers of its layout export, {EXPORTABLE}: one converted '
            'from transformers by clip_to_mmclip.py, or fine-tuned from '
            'one.')


def _hf_activation(act: nn.Module) -> str:
    if isinstance(act, QuickGELU):
        return 'quick_gelu'
    if isinstance(act, nn.GELU) and act.approximate == 'none':
        return 'gelu'
    raise ConversionError(
        f'The MLP activation {act!r} has no transformers CLIP equivalent '
        '(QuickGELU: quick_gelu, exact GELU: gelu).')


def hf_classifier_config(model: nn.Module,
                         classes: Optional[Sequence[str]] = None) -> dict:
    """The ``config.json`` of an exportable classifier.

    Args:
        model (nn.Module): See :func:`check_exportable`.
        classes (Sequence[str], optional): Class names in label order
            (``id2label``); None names them ``LABEL_i`` as transformers
            does. Defaults to None.

    Returns:
        dict: A ``CLIPConfig`` with ``vision_config`` (the text tower is
        left to transformers' defaults: the classifier has none).
    """
    backbone = model.backbone
    block = backbone.transformer.resblocks[0]
    num_classes = model.head.num_classes
    if classes is None:
        classes = [f'LABEL_{i}' for i in range(num_classes)]
    if len(classes) != num_classes:
        raise ConversionError(
            f'{len(classes)} class names for a classifier of {num_classes} '
            'classes.')
    return dict(
        architectures=['CLIPForImageClassification'],
        model_type='clip',
        dtype=str(backbone.conv1.weight.dtype).replace('torch.', ''),
        id2label={str(i): str(name)
                  for i, name in enumerate(classes)},
        label2id={str(name): i
                  for i, name in enumerate(classes)},
        vision_config=dict(
            model_type='clip_vision_model',
            hidden_size=backbone.embed_dims,
            intermediate_size=block.mlp.c_fc.out_features,
            num_hidden_layers=backbone.transformer.num_layers,
            num_attention_heads=block.attn.num_heads,
            image_size=backbone.img_size,
            patch_size=backbone.patch_size,
            num_channels=3,
            hidden_act=_hf_activation(block.mlp.gelu),
            layer_norm_eps=backbone.ln_pre.eps))


def hf_classifier_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The ``CLIPForImageClassification`` weights of an exportable
    classifier.

    ``vision_model.post_layernorm``, which the classifier's logits never
    use and the mmclip model does not have, is written as a fresh
    LayerNorm (weight 1, bias 0), so ``from_pretrained`` finds every
    weight.

    Args:
        model (nn.Module): See :func:`check_exportable`.

    Returns:
        dict[str, Tensor]: transformers' names, contiguous CPU tensors.
    """
    weights = {
        k: v.detach().cpu()
        for k, v in model.state_dict().items()
    }
    out, unknown = apply_rules(split_qkv(weights), EXPORT_RULES)
    if unknown:
        raise ConversionError(
            f'Internal error: no transformers name for {unknown[:8]}; '
            'please report this with the model config.')
    norm = model.backbone.ln_pre.weight
    out[UNUSED_CLASSIFIER_PREFIX + 'weight'] = torch.ones_like(norm).cpu()
    out[UNUSED_CLASSIFIER_PREFIX + 'bias'] = torch.zeros_like(norm).cpu()
    return {k: v.contiguous() for k, v in out.items()}


def export_hf_classifier(model: nn.Module,
                         out_dir: str,
                         classes: Optional[Sequence[str]] = None,
                         image_processor: Optional[dict] = None
                         ) -> List[str]:
    """Write ``model`` as a transformers ``CLIPForImageClassification``
    folder, all or nothing.

    Args:
        model (nn.Module): An mmclip classifier of the exportable layout
            (see :func:`check_exportable`), its weights loaded.
        out_dir (str): Folder to write (created; files of these names in
            it are replaced).
        classes (Sequence[str], optional): Class names (``id2label``).
            Defaults to None.
        image_processor (dict, optional): ``preprocessor_config.json``
            content (see
            :func:`~mmclip.converters.classifier.hf_image_processor`);
            None writes none. Defaults to None.

    Returns:
        list[str]: The files written.
    """
    from safetensors.torch import save_file
    check_exportable(model)
    config = hf_classifier_config(model, classes)
    weights = hf_classifier_state_dict(model)
    texts = {'config.json': config}
    if image_processor is not None:
        texts['preprocessor_config.json'] = image_processor
    paths = [osp.join(out_dir, 'model.safetensors')] + [
        osp.join(out_dir, name) for name in texts
    ]
    with staged_files(*paths) as temps:
        save_file(weights, temps[0], metadata={'format': 'pt'})
        for temp, content in zip(temps[1:], texts.values()):
            with open(temp, 'w', encoding='utf-8') as f:
                json.dump(content, f, indent=2)
                f.write('\n')
    return paths
