"""Loading a checkpoint's weights into a module: the one checked path.

``get_model(pretrained=...)``, :class:`~mmclip.models.ZeroShotInit` and the
linear probe's image tower all load through :func:`load_pretrained`.
"""
import copy
import inspect
import os.path as osp
from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import MMLogger

from mmclip.errors import shorten_list
from .backbones.clip_vit import CLIPVisionTransformer
from .text_encoders.clip_text import CLIPTextTransformer
from .utils.arch import resolve_arch
from .utils.checkpoint import load_weights, read_checkpoint, weights_of

__all__ = [
    'CheckpointMismatchError', 'check_checkpoint_parts', 'check_model_cfg',
    'checkpoint_fits_config', 'checkpoint_fits_model', 'describe_checkpoint',
    'load_pretrained'
]

#: Key prefixes of checkpoints that were not converted to mmclip's layout.
FOREIGN_PREFIXES = {
    'visual.': 'an OpenAI / open_clip state dict',
    'vision_model.': 'a transformers CLIP model (CLIPModel, '
    'CLIPForImageClassification)',
    'backbone.patch_embed.': 'an mmpretrain ViT classifier',
}


class CheckpointMismatchError(ValueError):
    """A checkpoint whose weights do not fit the model (or are not in
    mmclip's layout); the message names the keys and the fix."""


def load_pretrained(model: nn.Module,
                    checkpoint: str,
                    strict: bool = True,
                    model_cfg: Optional[dict] = None,
                    prefix: str = '') -> dict:
    """Load an mmclip checkpoint's weights into ``model`` without executing
    anything the file names (:func:`~mmclip.models.utils.checkpoint.
    load_weights`: ``weights_only=True``, or for a full training checkpoint
    such as ``work_dirs/.../epoch_24.pth`` an unpickler that keeps only its
    tensors).

    Everything is checked before any weight is copied: an image tower's
    position grid that differs from the model's (a 224px checkpoint in a
    384px model) is resized on load; anything else that does not fit is one
    error naming the mismatching keys, and the model stays as it was.

    Args:
        model (nn.Module): The module to fill.
        checkpoint (str): Path to an mmclip checkpoint (``.pth`` written by
            ``tools/model_converters/clip_to_mmclip.py`` or by training).
        strict (bool): Require every key of ``model`` in the checkpoint and
            no extra keys. Defaults to True.
        model_cfg (dict, optional): The ``CLIPModel`` config ``model`` was
            built from; on a mismatch it is compared with the architecture
            the checkpoint's ``meta`` records, to say which setting differs.
            Defaults to None.
        prefix (str): Load only the checkpoint's keys that start with it,
            without it, e.g. ``'backbone.'`` to fill an image tower from a
            whole CLIP or classifier checkpoint. Messages name keys as the
            checkpoint does. Defaults to ``''`` (all keys).

    Returns:
        dict: The checkpoint's ``meta`` (empty when it has none).

    Raises:
        CheckpointMismatchError: The checkpoint is in another library's
            layout (convert it first), has no ``prefix`` keys, or does not
            fit ``model``.
    """
    weights = load_weights(checkpoint)
    meta, state_dict = weights['meta'], weights['state_dict']
    for foreign, what in FOREIGN_PREFIXES.items():
        if any(k.startswith(foreign) for k in state_dict):
            raise CheckpointMismatchError(
                f'{checkpoint!r} looks like {what}, not an mmclip checkpoint. '
                'Convert it first: `python tools/model_converters/'
                f'clip_to_mmclip.py {checkpoint} OUT.pth`.')
    if prefix:
        state_dict = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
        if not state_dict:
            raise CheckpointMismatchError(
                f'{checkpoint!r} has no {prefix}* weights: is it an mmclip '
                'checkpoint? Convert OpenAI / open_clip / transformers '
                'weights with tools/model_converters/clip_to_mmclip.py.')
    own = model.state_dict()
    if strict and not prefix:
        check_checkpoint_parts(own, state_dict, checkpoint,
                               other_kind_only=True)
    resized = _resized_on_load(model)
    shape_errors = [
        f'{prefix}{k}: checkpoint {tuple(v.shape)} vs model '
        f'{tuple(own[k].shape)}' for k, v in state_dict.items()
        if k in own and v.shape != own[k].shape and k not in resized
    ]
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    problems = list(shape_errors)
    if strict and missing:
        problems.append('missing: ' + _summarize(
            [prefix + k for k in missing], [prefix + k for k in own]))
    if strict and unexpected:
        problems.append('unexpected: ' +
                        shorten_list([prefix + k for k in unexpected]))
    if problems:
        # strict=False loads keys that fit; it cannot load other shapes.
        partial = '' if shape_errors else (
            ' or pass strict=False to load the shared part')
        raise CheckpointMismatchError(
            f'Checkpoint {checkpoint!r} does not match the model config: '
            + '; '.join(problems) + '.' + _config_hint(model_cfg, meta) +
            ' Use the config that matches the checkpoint (arch, patch size, '
            f'embedding dim){partial}.')
    model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        MMLogger.get_current_instance().warning(
            f'Loaded {checkpoint} non-strictly; missing '
            f'{shorten_list([prefix + k for k in missing])}, unexpected '
            f'{shorten_list([prefix + k for k in unexpected])}.')
    return meta


def _resized_on_load(model: nn.Module) -> set:
    """Keys whose shape may differ: the position grids of image towers,
    which resize a checkpoint's grid on load."""
    return {
        f'{name}.positional_embedding' if name else 'positional_embedding'
        for name, module in model.named_modules()
        if isinstance(module, CLIPVisionTransformer)
    }


def _config_hint(model_cfg: Optional[dict], meta: dict) -> str:
    """What the checkpoint's ``meta`` says about its architecture."""
    if isinstance(meta.get('model_cfg'), dict) and model_cfg is not None:
        diffs = check_model_cfg(dict(model_cfg), meta)
        return (' Config vs checkpoint: ' + '; '.join(diffs) +
                '.') if diffs else ''
    if meta.get('model_cfg'):
        return f' The checkpoint describes itself as {meta["model_cfg"]}.'
    return ''


def _summarize(missing: List[str], own: List[str]) -> str:
    """Name wholly missing top-level parts (``text_encoder.*``) as one."""
    parts = []
    for top in sorted({k.split('.')[0] for k in missing}):
        mine = [k for k in own if k.split('.')[0] == top]
        gone = [k for k in missing if k.split('.')[0] == top]
        if len(gone) == len(mine) and len(mine) > 1:
            parts.append(f'all of {top}.* ({len(gone)} keys: the checkpoint '
                         f'has no {top})')
        else:
            parts.extend(gone)
    return shorten_list(parts)


def _resolved(cfg: dict, key: str) -> Dict[str, object]:
    """Flatten a tower config: zoo names resolved, defaults filled in."""
    cls = CLIPVisionTransformer if key == 'vision_backbone' \
        else CLIPTextTransformer
    arch = resolve_arch(cls.arch_zoo, cfg.get('arch', 'base'), cls.__name__)
    flat = dict(
        embed_dims=arch['embed_dims'],
        num_layers=arch['num_layers'],
        num_heads=arch['num_heads'],
        # Hidden widths, not ratios: a ratio read off a checkpoint's shapes
        # is nudged so that int(width * ratio) gives its hidden width.
        mlp_hidden=int(arch['embed_dims'] * arch.get('mlp_ratio', 4.)))
    out = cfg.get('out_channels')
    flat['out_channels'] = arch.get('proj_dims', arch['embed_dims']) \
        if out is None else out
    # anything left out of a config takes the class default
    params = inspect.signature(cls.__init__).parameters
    flat['act'] = (cfg.get('act_cfg') or params['act_cfg'].default)['type']
    names = ('img_size',
             'patch_size') if key == 'vision_backbone' else ('vocab_size',
                                                             'context_length')
    for name in names:
        flat[name] = cfg.get(name, params[name].default)
    return flat


def check_model_cfg(model_cfg: dict, meta: dict,
                    ignore=('img_size', )) -> List[str]:
    """List how a model config differs from a converted checkpoint.

    Args:
        model_cfg (dict): A ``CLIPModel`` config (or its kwargs) with
            ``vision_backbone`` and ``text_encoder`` dicts.
        meta (dict): The ``meta`` of an mmclip checkpoint.
        ignore (Iterable[str]): Fields not to compare; ``img_size`` by
            default because the image tower resizes the position grid when
            loading. Defaults to ``('img_size', )``.

    Returns:
        list[str]: One readable line per mismatch, empty if they agree.
    """
    problems = []
    for key in ('vision_backbone', 'text_encoder'):
        want, have = model_cfg.get(key), meta['model_cfg'].get(key)
        if want is None or have is None:
            if have is None and want is not None:
                problems.append(f'{key}: the config has one, the checkpoint '
                                'has no weights for it.')
            continue
        want, have = _resolved(want, key), _resolved(have, key)
        for name, value in have.items():
            if name in ignore or name not in want:
                continue
            if want[name] != value:
                problems.append(f'{key}.{name}: config {want[name]!r}, '
                                f'checkpoint {value!r}')
    return problems


def describe_checkpoint(keys: Iterable[str]) -> str:
    """What an mmclip checkpoint holds, from its keys, for messages: ``'a
    CLIP checkpoint (...)'``, ``'a classifier checkpoint (...)'``, ..."""
    parts = {k.split('.')[0] for k in keys}
    if 'text_encoder' in parts:
        return ('a CLIP checkpoint (image and text towers'
                + (', a head)' if 'head' in parts else ', no classifier)'))
    if 'head' in parts:
        return ('a classifier checkpoint (an image tower and a classifier '
                'head, no text tower)')
    if 'backbone' in parts:
        return 'an image tower checkpoint (no text tower, no classifier)'
    return ('not an mmclip model checkpoint (no backbone.*, text_encoder.* '
            'or head.* weights)')


def _absent_parts(model_keys: Iterable[str],
                  checkpoint_keys: Iterable[str]) -> Tuple[list, set]:
    """The model's parts (submodules: ``text_encoder``, ``head``, ...) the
    checkpoint has no weight of, and the checkpoint's parts. A lone
    parameter such as ``logit_scale`` is left to the key-by-key check."""
    wanted = {k.split('.')[0] for k in model_keys if '.' in k}
    present = {k.split('.')[0] for k in checkpoint_keys}
    return sorted(wanted - present), present


def _other_kind_fix(absent: list, present: set,
                    checkpoint: str) -> Optional[str]:
    """What to do with a CLIP checkpoint given for a classifier, or a
    classifier checkpoint given for a CLIP; None for other mismatches."""
    if 'head' in absent and 'text_encoder' in present:
        return ('A CLIP checkpoint has no classifier: evaluate it with a '
                'zero-shot config (configs/clip/*_zeroshot-cls_*.py), or '
                'fine-tune a classifier from it (configs/clip/*_ft-*.py '
                'start their head from it).')
    if 'text_encoder' in absent and 'head' in present:
        config = osp.splitext(checkpoint)[0] + '.py'
        own = (f'{config}, written with it by clip_to_mmclip.py'
               if osp.isfile(config) else 'the one clip_to_mmclip.py '
               'writes beside a converted transformers classifier, or the '
               'fine-tune config that trained it')
        return (f'Use it with its classifier config ({own}), or give a CLIP '
                'checkpoint.')
    return None


def check_checkpoint_parts(model_keys: Iterable[str],
                           checkpoint_keys: Iterable[str],
                           checkpoint: str,
                           other_kind_only: bool = False) -> None:
    """Refuse a checkpoint without a single weight of a part of the model
    (its text tower, its classifier head, ...), which would otherwise run
    with that part's random initial weights: a CLIP checkpoint given with a
    classifier config, or a classifier checkpoint with a CLIP config.

    Args:
        model_keys (Iterable[str]): The model's state-dict keys.
        checkpoint_keys (Iterable[str]): The checkpoint's.
        checkpoint (str): The checkpoint file, for the message.
        other_kind_only (bool): Refuse only those two cases, leaving other
            missing parts to the caller's own message. Defaults to False.

    Raises:
        CheckpointMismatchError: Naming what the checkpoint is, the parts
            it lacks and the fix.
    """
    checkpoint_keys = list(checkpoint_keys)
    absent, present = _absent_parts(model_keys, checkpoint_keys)
    if not absent:
        return
    fix = _other_kind_fix(absent, present, checkpoint)
    if fix is None and other_kind_only:
        return
    raise CheckpointMismatchError(
        f'{checkpoint!r} is {describe_checkpoint(checkpoint_keys)}: it has '
        'no weights for the ' + ', '.join(f'{p}.*' for p in absent) +
        ' of the model the config builds. ' +
        (fix or 'Use the config that matches the checkpoint.'))


def checkpoint_fits_model(model: nn.Module, checkpoint: str) -> None:
    """:func:`check_checkpoint_parts` for a checkpoint file, before a
    runner loads it non-strictly (mmengine's ``load_from`` only warns about
    missing weights). Only the keys are read (memory-mapped).

    Args:
        model (nn.Module): The model (unwrapped).
        checkpoint (str): A local checkpoint file.
    """
    keys = weights_of(read_checkpoint(checkpoint, mmap=True),
                      checkpoint)['state_dict']
    check_checkpoint_parts(model.state_dict(), keys, checkpoint)


def checkpoint_fits_config(model_cfg: dict, checkpoint: str) -> bool:
    """:func:`checkpoint_fits_model` for the model a config describes,
    before anything is built for real: the model is built on the meta
    device (no memory, no initialisation; a fraction of a second even for
    ViT-L), so a tool can refuse a checkpoint of the other kind before its
    runner writes a work dir.

    Args:
        model_cfg (dict): The config's ``model``.
        checkpoint (str): A local checkpoint file.

    Returns:
        bool: True when checked; False when the model could not be built on
        the meta device (the caller checks the built model instead).

    Raises:
        CheckpointMismatchError: See :func:`check_checkpoint_parts`.
    """
    from mmclip.registry import MODELS
    try:
        with torch.device('meta'):
            model = MODELS.build(copy.deepcopy(model_cfg))
    except Exception:  # e.g. a model that computes at build: check later
        return False
    checkpoint_fits_model(model, checkpoint)
    return True
