"""Recognise which library wrote a CLIP state dict from its keys."""
from typing import Dict, Iterable, Optional

from .common import ConversionError, UnknownLayoutError

# layout name -> (keys that identify it (all of them), description); the
# first layout whose keys are all there wins, so a layout comes before any
# whose keys are a subset of its own.
LAYOUTS = {
    'torchscript':
    (('visual.conv1.weight', ),
     "OpenAI's released TorchScript archive (ViT-B-32.pt, ...)"),
    'open_clip': (('visual.conv1.weight', ),
                  'OpenAI/open_clip state dict (visual.conv1.weight, '
                  'token_embedding.weight, ...), .pt/.bin/.safetensors, '
                  'plain, nested under "state_dict" or DDP-prefixed'),
    'hf_cls': (('vision_model.embeddings.patch_embedding.weight',
                'classifier.weight'),
               'transformers CLIPForImageClassification (vision_model.*, '
               'classifier.*), converted to an mmpretrain ImageClassifier '
               'with its config'),
    'hf': (('vision_model.embeddings.patch_embedding.weight', ),
           'transformers CLIPModel (vision_model.*, text_model.*, '
           'visual_projection.weight), a save_pretrained folder or its '
           'weights file'),
    'mmpretrain_cls': (('backbone.patch_embed.projection.weight', ),
                       "mmpretrain ImageClassifier with a CLIP ViT "
                       "(VisionTransformer(pre_norm=True)): backbone.*, "
                       'head.*'),
    'mmpretrain_clip': (('visual.patch_embed.projection.weight', ),
                        "mmpretrain's CLIP/CLIPZeroShot (visual.*, "
                        'visual_proj.proj, transformer.resblocks.*)'),
    'mmclip': (('backbone.conv1.weight', ),
               'an mmclip checkpoint (backbone.*, text_encoder.*), '
               'converted again to refresh its meta'),
}
FORMATS = tuple(LAYOUTS)


def describe_formats() -> str:
    """One line per recognised layout, for error messages and ``--help``."""
    return '\n'.join(f'  - {name}: {desc}'
                     for name, (_, desc) in LAYOUTS.items())


def _missing_keys(keys: Iterable[str], layout: str) -> list:
    """The identifying keys of ``layout`` that ``keys`` lacks."""
    return [k for k in LAYOUTS[layout][0] if k not in keys]


def detect_format(state_dict: Dict,
                  container: str = 'torch',
                  fmt: Optional[str] = None) -> str:
    """Name the layout of ``state_dict``.

    Args:
        state_dict (dict[str, Tensor]): Weights with wrapper prefixes already
            removed (see :func:`~mmclip.converters.common.strip_prefix`).
        container (str): How they were stored (``'torchscript'``, ``'torch'``
            or ``'safetensors'``); a TorchScript archive with OpenAI's keys is
            ``'torchscript'``, which fixes the activation to QuickGELU.
            Defaults to ``'torch'``.
        fmt (str, optional): A layout the caller expects (``--format``);
            ``None`` or ``'auto'`` detects it. A forced layout is checked
            against the keys. Defaults to None.

    Returns:
        str: One of :data:`FORMATS`.
    """
    keys = set(state_dict)
    if fmt not in (None, 'auto'):
        if fmt not in LAYOUTS:
            raise ValueError(f'Unknown format {fmt!r}: use "auto" or one of '
                             f'{list(FORMATS)}.')
        if fmt == 'torchscript' and container != 'torchscript':
            raise ConversionError(
                'format "torchscript" was requested but the file is not a '
                'TorchScript archive; use --format open_clip for a plain '
                'OpenAI state dict.')
        missing = _missing_keys(keys, fmt)
        if missing:
            raise ConversionError(
                f'format {fmt!r} was requested but the checkpoint lacks its '
                f'key(s) {missing}; found e.g. {sorted(keys)[:8]}. Try '
                '--format auto.')
        return fmt
    for name in FORMATS:
        if name == 'torchscript' and container != 'torchscript':
            continue
        if not _missing_keys(keys, name):
            return name
    raise UnknownLayoutError(
        f'Unrecognised checkpoint layout ({len(keys)} tensors, e.g. '
        f'{sorted(keys)[:8]}). Recognised layouts:\n{describe_formats()}\n'
        'Only the ViT variants of CLIP are supported (no ResNet towers, timm '
        'or HF-text towers).')
