"""Read the weights of a CLIP checkpoint without trusting it.

Sources may come from anywhere, so nothing here runs pickled code:

- ``.pt``/``.pth``/``.bin`` files are read with ``torch.load(...,
  weights_only=True)``, which only rebuilds tensors and plain containers. A
  training checkpoint that pickles more (open_clip's argparse ``args``,
  mmengine's message hub) gives its weights through
  :func:`mmclip.models.utils.checkpoint.load_tensors_only`, whose restricted
  unpickler resolves only tensor builders and turns every other name into an
  inert placeholder.
- ``.safetensors`` files hold raw tensors only.
- TorchScript archives (OpenAI's released ``ViT-B-32.pt`` etc.) are opened
  with ``torch.jit.load``. It compiles the archive's TorchScript code (a
  restricted language without access to Python) and unpickles constants with
  TorchScript's own loader, not Python's; we only read ``state_dict()`` and
  never run the module.
"""
import json
import os
import os.path as osp
import struct
import warnings
import zipfile
from typing import Dict, NamedTuple, Optional

import torch

from mmclip.models.utils.checkpoint import (UnsafeCheckpointError,
                                            read_checkpoint)
from .common import ConversionError, strip_prefix

# File names inside a checkpoint folder, in order of preference: open_clip's
# hub files first (the original layout, no q/k/v fusing), then transformers'.
OPEN_CLIP_FILES = ('open_clip_model.safetensors',
                   'open_clip_pytorch_model.bin')
HF_FILES = ('model.safetensors', 'model.safetensors.index.json',
            'pytorch_model.bin', 'pytorch_model.bin.index.json')
OPEN_CLIP_CONFIG = 'open_clip_config.json'
HF_CONFIG = 'config.json'
HF_PREPROCESSOR = 'preprocessor_config.json'
# Values of an HF ``model_type`` that describe (part of) a CLIP model.
HF_CLIP_TYPES = ('clip', 'clip_vision_model', 'clip_text_model')
# Scalars OpenAI's TorchScript archives store next to the weights.
OPENAI_EXTRAS = ('input_resolution', 'context_length', 'vocab_size')


class SourceCheckpoint(NamedTuple):
    """The raw content of a source checkpoint.

    Attributes:
        path (str): The file that held the weights.
        container (str): ``'torchscript'``, ``'torch'`` or ``'safetensors'``.
        state_dict (dict[str, Tensor]): Tensors, wrapper prefixes removed.
        hints (dict): What else was found: ``hf_config`` (dict from a
            transformers ``config.json``), ``hf_preprocessor`` (dict from
            the ``preprocessor_config.json`` beside it),
            ``open_clip_config`` (dict from ``open_clip_config.json``),
            ``run_name`` (the ``name`` of an open_clip training checkpoint),
            ``mmclip_meta`` (the meta of an already converted checkpoint),
            ``openai_extras`` (dict of ints from a TorchScript archive).
    """
    path: str
    container: str
    state_dict: Dict[str, torch.Tensor]
    hints: dict


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sibling_hints(folder: str) -> dict:
    """Configs stored next to the weights (HF and open_clip hub folders)."""
    hints = {}
    hf = _read_json(osp.join(folder, HF_CONFIG))
    if hf is not None and hf.get('model_type') in HF_CLIP_TYPES:
        hints['hf_config'] = hf
        processor = _read_json(osp.join(folder, HF_PREPROCESSOR))
        if processor is not None:
            hints['hf_preprocessor'] = processor
    oc = _read_json(osp.join(folder, OPEN_CLIP_CONFIG))
    if oc is not None and isinstance(oc.get('model_cfg'), dict):
        hints['open_clip_config'] = oc
    return hints


def _is_torchscript(path: str) -> bool:
    """A TorchScript archive is a zip with compiled ``code/`` and
    ``constants.pkl``; a ``torch.save`` zip has neither."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(
            n.endswith('/constants.pkl') or '/code/' in n
            for n in zf.namelist())


def _looks_like_safetensors(path: str) -> bool:
    """safetensors files start with a little-endian u64 header length and a
    JSON header."""
    with open(path, 'rb') as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (size, ) = struct.unpack('<Q', head[:8])
    return head[8:9] == b'{' and 0 < size < osp.getsize(path)


def _torch_load(path: str):
    """A ``torch.save`` file without executing anything it names
    (:func:`~mmclip.models.utils.checkpoint.read_checkpoint`): a plain
    file whole, memory-mapped when it is a zip (no full copy of gigabytes of
    weights); a training checkpoint that pickles other objects (argparse
    args, mmengine's message hub, numpy RNG state) as its weights and plain
    ``meta``."""
    try:
        return read_checkpoint(path, mmap=True)
    except UnsafeCheckpointError as e:
        raise ConversionError(str(e)) from None
    except RuntimeError as e:
        raise ConversionError(
            f'{path} is not a readable PyTorch checkpoint: {e}') from None


def _load_safetensors(path: str) -> Dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    try:
        return load_file(path, device='cpu')
    except Exception as e:  # safetensors raises its own error types
        raise ConversionError(
            f'{path} is not a valid safetensors file: {e}') from None


def _load_sharded(index_path: str) -> Dict[str, torch.Tensor]:
    """Merge the shards listed in an HF ``*.index.json``."""
    index = _read_json(index_path)
    if not index or not isinstance(index.get('weight_map'), dict):
        raise ConversionError(f'{index_path} has no "weight_map".')
    folder = osp.dirname(index_path)
    state_dict = {}
    for shard in sorted(set(index['weight_map'].values())):
        shard_path = osp.join(folder, shard)
        if not osp.isfile(shard_path):
            raise FileNotFoundError(
                f'Shard {shard_path} listed in {index_path} is missing; '
                'download all shards of the model.')
        state_dict.update(_load_file(shard_path, {})[1])
    return state_dict


def _unwrap(obj, path: str, hints: dict) -> Dict[str, torch.Tensor]:
    """Find the tensors of a loaded object and record training metadata.

    open_clip training checkpoints are ``{'epoch', 'name', 'state_dict',
    'optimizer', ...}`` and mmengine's are ``{'meta', 'state_dict', ...}``.
    """
    if not isinstance(obj, dict):
        raise ConversionError(
            f'{path} holds a {type(obj).__name__}, not a dict of tensors; '
            'save model.state_dict() instead of the model object.')
    for key in ('state_dict', 'model'):
        inner = obj.get(key)
        if isinstance(inner, dict) and any(
                torch.is_tensor(v) for v in inner.values()):
            if isinstance(obj.get('name'), str):
                hints['run_name'] = obj['name']
            meta = obj.get('meta')
            if isinstance(meta, dict) and 'mmclip_version' in meta:
                hints['mmclip_meta'] = meta
            obj = inner
            break
    tensors = {k: v for k, v in obj.items() if torch.is_tensor(v)}
    if not tensors:
        raise ConversionError(f'{path} contains no tensors (top-level keys: '
                              f'{list(obj)[:10]}); is it a CLIP checkpoint?')
    return tensors


def _load_file(path: str, hints: dict):
    """Load one weights file; returns ``(container, tensors)``."""
    if _is_torchscript(path):
        with warnings.catch_warnings():
            # deprecated in favour of torch.export, but OpenAI's archives
            # can only be read this way
            warnings.filterwarnings(
                'ignore', message='.*torch.jit.load', category=FutureWarning)
            try:
                module = torch.jit.load(path, map_location='cpu')
            except RuntimeError as e:
                raise ConversionError(
                    f'{path} looks like a TorchScript archive but cannot be '
                    f'loaded: {e}') from None
        state_dict = {k: v.detach() for k, v in module.state_dict().items()}
        hints['openai_extras'] = {
            k: int(state_dict[k])
            for k in OPENAI_EXTRAS
            if k in state_dict and state_dict[k].numel() == 1
        }
        return 'torchscript', state_dict
    if path.endswith('.safetensors') or (not zipfile.is_zipfile(path)
                                         and _looks_like_safetensors(path)):
        return 'safetensors', _load_safetensors(path)
    if path.endswith('.index.json'):
        return 'torch', _load_sharded(path)
    return 'torch', _unwrap(_torch_load(path), path, hints)


def _pick_in_folder(folder: str) -> str:
    for name in OPEN_CLIP_FILES + HF_FILES:
        candidate = osp.join(folder, name)
        if osp.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f'{folder} is a folder without CLIP weights: expected one of '
        f'{list(OPEN_CLIP_FILES + HF_FILES)} (found '
        f'{sorted(os.listdir(folder))[:10]}). Pass the weights file itself '
        'if it has another name.')


def load_source(path: str) -> SourceCheckpoint:
    """Read a checkpoint file or folder into a :class:`SourceCheckpoint`.

    Args:
        path (str): A ``.pt``/``.pth``/``.bin``/``.safetensors`` file, a
            TorchScript archive, an HF ``*.index.json``, or a folder saved by
            transformers' ``save_pretrained`` or open_clip's hub export.

    Returns:
        SourceCheckpoint: Tensors (``module.``/``_orig_mod.`` prefixes
        removed) and hints for the converter.
    """
    path = os.fspath(path)
    if not osp.exists(path):
        raise FileNotFoundError(
            f'Checkpoint not found: {path!r}. Check the path (download the '
            'weights first; the converter does not fetch URLs or hub names).')
    if osp.isdir(path):
        folder, weights = path, _pick_in_folder(path)
    else:
        folder, weights = osp.dirname(osp.abspath(path)), path
    hints = _sibling_hints(folder)
    container, state_dict = _load_file(weights, hints)
    return SourceCheckpoint(weights, container, strip_prefix(state_dict),
                            hints)
