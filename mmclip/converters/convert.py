"""Convert any recognised CLIP checkpoint to an mmclip checkpoint.

The output is ``{'state_dict': ..., 'meta': ...}`` with only tensors and
plain Python values, so it loads with ``torch.load(path, weights_only=True)``.
See :func:`convert_checkpoint` for the ``meta`` schema.
"""
import os.path as osp
import warnings
from collections import Counter
from typing import Dict, Optional, Tuple

import torch

from mmclip.version import __version__
from .arch import build_model_cfg, infer_text_arch, infer_vision_arch
from .classifier import classifier_config_text, classifier_meta
from .common import (ConversionError, check_mmclip_keys, convert_mmclip,
                     staged_files)
from .detect import detect_format
from .hf import convert_hf, convert_hf_classifier
from .loading import load_source
from .mmpretrain import (convert_mmpretrain_clip, convert_mmpretrain_cls,
                         describe_head)
from .openai import convert_openai
from .sources import MMCLIP_LN_EPS, choose_activation, source_settings

CONVERTERS = {
    'torchscript': convert_openai,
    'open_clip': convert_openai,
    'hf_cls': convert_hf_classifier,
    'hf': convert_hf,
    'mmpretrain_cls': convert_mmpretrain_cls,
    'mmpretrain_clip': convert_mmpretrain_clip,
    'mmclip': convert_mmclip,  # already mmclip's; re-derive the meta only
}


def _check_openai_extras(extras: dict, vision: dict, text: Optional[dict]):
    """TorchScript archives state resolution/context/vocab; compare."""
    found = dict(input_resolution=vision['img_size'])
    if text:
        found.update(
            context_length=text['context_length'],
            vocab_size=text['vocab_size'])
    for key, value in extras.items():
        if key in found and found[key] != value:
            warnings.warn(f'The archive says {key}={value} but the weights '
                          f'give {found[key]}; the weights are used.')


def convert_checkpoint(
        src: str,
        fmt: str = 'auto',
        act: Optional[str] = None,
        vision_heads: Optional[int] = None,
        text_heads: Optional[int] = None
) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Convert a CLIP checkpoint of another library to mmclip's layout.

    Args:
        src (str): Checkpoint file or folder (see
            :func:`~mmclip.converters.loading.load_source`).
        fmt (str): Source layout, one of
            :data:`~mmclip.converters.detect.FORMATS`, or ``'auto'`` to
            detect it from the keys. Defaults to ``'auto'``.
        act (str, optional): ``'quick_gelu'`` or ``'gelu'``: the MLP
            activation, overriding what the source implies. Needed for plain
            open_clip state dicts, which do not record it (OpenAI's weights
            use QuickGELU, most LAION ones GELU). Defaults to None.
        vision_heads (int, optional): Image tower head count, if the source
            does not record it and ``width // 64`` is wrong. Defaults to None.
        text_heads (int, optional): Same for the text tower. Defaults to None.

    Returns:
        tuple[dict[str, Tensor], dict]: The mmclip state dict and ``meta``:

        - ``mmclip_version`` (str), ``source_file`` (str, base name),
          ``source_format`` (str, a layout name), ``dtype`` (str).
        - ``towers`` (list[str]): ``['vision', 'text']`` or ``['vision']``.
        - ``act_cfg`` (dict): e.g. ``{'type': 'QuickGELU'}`` (the image
          tower's; the model config has each tower's).
        - ``act_certain`` (bool): whether the source (or ``act``) fixes it;
          ``act_reason`` (str): why this activation.
        - ``arch`` (dict): ``vision`` (see
          :func:`~mmclip.converters.arch.infer_vision_arch`), ``text`` (see
          :func:`~mmclip.converters.arch.infer_text_arch`, or None) and
          ``embed_dims`` (int, shared embedding dim).
        - ``model_cfg`` (dict): ``vision_backbone`` and ``text_encoder``
          (None without a text tower) configs for ``CLIPModel``.
        - ``layer_norm_eps`` (dict): per tower, of the source model.
        - ``classifier_head`` (dict | None): the mmpretrain head kept under
          ``head.*`` (see :func:`~mmclip.converters.mmpretrain.describe_head`).
        - ``dataset_meta`` (dict, classifiers whose source names classes):
          ``{'classes': [...]}`` in label order, which ``get_model`` and
          ``inference_model`` name predictions with.
        - ``preprocess`` (dict, transformers classifiers): their image
          processor in mmclip's terms (see
          :func:`~mmclip.converters.classifier.hf_preprocess`).
        - ``notes`` (list[str]): anything the user should know.
    """
    source = load_source(src)
    layout = detect_format(source.state_dict, source.container, fmt)
    state_dict = CONVERTERS[layout](source.state_dict)
    check_mmclip_keys(state_dict)
    settings = source_settings(layout, source.hints)
    v_set, t_set = settings.get('vision', {}), settings.get('text', {})
    vision = infer_vision_arch(state_dict, vision_heads
                               or v_set.get('num_heads'))
    text = infer_text_arch(state_dict, text_heads or t_set.get('num_heads'))
    notes = []

    acts, certain, reason = choose_activation(layout, source.hints, settings,
                                              act, source.path)

    eps = dict(vision=v_set.get('layer_norm_eps', MMCLIP_LN_EPS))
    if text is not None:
        eps['text'] = t_set.get('layer_norm_eps', MMCLIP_LN_EPS)
    for tower, value in eps.items():
        if value != MMCLIP_LN_EPS:
            notes.append(
                f'The source model runs its {tower} tower with LayerNorm '
                f'eps={value:g} (mmclip\'s default is {MMCLIP_LN_EPS:g}, the '
                'value of the OpenAI/timm models); model_cfg sets '
                f'layer_norm_eps={value:g} so features match the source.')
    if text is None:
        notes.append(
            'Image tower only: the checkpoint has no text tower; '
            'build the image tower from model_cfg["vision_backbone"].')
    elif vision['out_channels'] != text['out_channels']:
        notes.append(f'Image and text embeddings differ in size '
                     f'({vision["out_channels"]} vs {text["out_channels"]}).')
    head = describe_head(state_dict)
    classifier = {} if head is None else classifier_meta(
        layout, source.hints, head, vision['img_size'], notes)
    if 'openai_extras' in source.hints:
        _check_openai_extras(source.hints['openai_extras'], vision, text)

    pool_type = v_set.get('pool_type', 'cls_token')
    if not vision['final_norm'] and pool_type == 'cls_token':
        raise ConversionError(
            'The image tower has no final LayerNorm (ln_post/post_layernorm),'
            " which CLIP's class-token embedding needs: the checkpoint is "
            'truncated.')
    model_cfg = build_model_cfg(vision, text, acts['vision'], acts['text'],
                                t_set.get('eot_token_id'), eps, pool_type)
    dtypes = Counter(
        str(v.dtype).replace('torch.', '') for v in state_dict.values())
    meta = dict(
        mmclip_version=__version__,
        source_file=osp.basename(source.path),
        source_format=layout,
        dtype=dtypes.most_common(1)[0][0],
        towers=['vision'] + (['text'] if text is not None else []),
        act_cfg=dict(type=acts['vision']),
        act_certain=certain,
        act_reason=reason,
        arch=dict(
            vision=vision,
            text=text,
            embed_dims=vision['out_channels'] or vision['embed_dims']),
        model_cfg=model_cfg,
        layer_norm_eps=eps,
        classifier_head=head,
        notes=notes,
        **classifier)
    return state_dict, meta


def _check_plain(value, where: str = 'meta') -> None:
    """Only what ``torch.load(weights_only=True)`` accepts may go in meta."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f'{where} has a non-str key {k!r}.')
            _check_plain(v, f'{where}[{k!r}]')
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f'{where}[{i}]')
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise TypeError(f'{where} is a {type(value).__name__}; meta must hold '
                        'plain Python values only.')


def _checkpoint(state_dict: Dict[str, torch.Tensor], meta: dict) -> dict:
    """``{'state_dict': ..., 'meta': ...}`` as saved: meta checked, tensors
    detached and owning their storage."""
    _check_plain(meta)
    tensors = {}
    for key, value in state_dict.items():
        value = value.detach().contiguous()
        # a view (e.g. a squeezed mmpretrain token) would drag its whole
        # storage into the file
        if value.untyped_storage().nbytes() != \
                value.numel() * value.element_size():
            value = value.clone()
        tensors[key] = value
    return dict(state_dict=tensors, meta=meta)


def save_mmclip_checkpoint(dst: str, state_dict: Dict[str, torch.Tensor],
                           meta: dict) -> None:
    """Write ``{'state_dict': state_dict, 'meta': meta}`` to ``dst``, all or
    nothing (:func:`~mmclip.converters.common.staged_files`).

    Args:
        dst (str): Output path (``.pth``); parent folders are created.
        state_dict (dict[str, Tensor]): mmclip weights.
        meta (dict): Plain Python values (checked), see
            :func:`convert_checkpoint`.
    """
    checkpoint = _checkpoint(state_dict, meta)
    with staged_files(dst) as (temp, ):
        torch.save(checkpoint, temp)


def classifier_config_path(dst: str) -> str:
    """Where :func:`convert_file` writes the config of a converted
    transformers classifier: beside ``dst``, named after it (``.py``)."""
    return osp.splitext(dst)[0] + '.py'


def convert_file(src: str, dst: str, **kwargs) -> dict:
    """Convert ``src`` and save it to ``dst``; returns the meta.

    A transformers ``CLIPForImageClassification`` also gets its mmpretrain
    config, :func:`classifier_config_path` (see
    :func:`~mmclip.converters.classifier.classifier_config`). Nothing is
    written unless the whole conversion succeeds.

    Args:
        src (str): Source checkpoint (file or folder).
        dst (str): Output file; must not be ``src`` itself.
        **kwargs: Passed to :func:`convert_checkpoint`.
    """
    if osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst):
        raise ConversionError(f'{dst} is the source checkpoint; write the '
                              'converted file elsewhere.')
    state_dict, meta = convert_checkpoint(src, **kwargs)
    outputs, texts = [dst], []
    if 'preprocess' in meta:
        config = classifier_config_path(dst)
        if config == dst:
            raise ConversionError(
                f'{dst} is where the classifier\'s config goes (beside the '
                'checkpoint, as .py): name the checkpoint .pth.')
        outputs.append(config)
        texts.append(classifier_config_text(meta, config, dst))
    checkpoint = _checkpoint(state_dict, meta)
    with staged_files(*outputs) as temps:
        torch.save(checkpoint, temps[0])
        for temp, text in zip(temps[1:], texts):
            with open(temp, 'w', encoding='utf-8') as f:
                f.write(text)
    return meta
