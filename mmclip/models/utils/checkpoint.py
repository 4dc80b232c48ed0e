"""Reading checkpoints without executing pickles.

A ``.pth`` file is a pickle, and unpickling runs whatever the file names.
mmclip has one policy, built on torch's public APIs:

1. **Plain files** load with ``torch.load(..., weights_only=True)``, which
   rebuilds only tensors and Python containers. Every checkpoint
   ``tools/train.py`` writes is plain by construction
   (:class:`~mmclip.engine.hooks.PlainCheckpointHook` stores the message hub
   and numpy values as plain data; :class:`~mmclip.engine.hooks.RNGStateHook`
   its RNG states), so it loads, and resumes, from any folder with
   mmengine's stock loader too. So do converted weights, mmpretrain's
   released checkpoints and open_clip's ``epoch_N.pt``.
2. **Other files** (an older mmengine run's ``epoch_N.pth`` with
   ``HistoryBuffer`` and numpy objects, a training checkpoint carrying
   ``argparse.Namespace`` arguments, ...) are read *for their weights* with
   :class:`TensorsOnlyUnpickler`, a restricted unpickler on the ``find_class``
   pattern of Python's :mod:`pickle` documentation, passed to ``torch.load``
   as ``pickle_module``. It resolves the few globals that rebuild tensors and
   containers and turns every other class or function the file names into an
   inert placeholder, so nothing named in the file runs. Only the tensors of
   ``state_dict`` and the plain values of ``meta`` are kept; what was refused
   is reported by name. Their training state cannot be resumed (it would have
   to be executed): start from their weights with ``load_from`` instead.

Everything that reads a checkpoint goes through :func:`read_checkpoint`
(the converter, with memory-mapping) or :func:`load_weights` on it
(``get_model(pretrained=...)``, :func:`~mmclip.models.utils.load_pretrained`,
WiSE-FT). mmclip's runs route mmengine's local checkpoint loading through it
too (:func:`mmclip.utils.mmclip_checkpoint_loading`).
"""
import io
import os.path as osp
import pickle
import re
import zipfile
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import print_log

__all__ = [
    'UnsafeCheckpointError', 'TorchScriptArchiveError', 'get_state_dict',
    'load_checkpoint_file', 'load_tensors_only', 'load_weights',
    'read_checkpoint', 'weights_of', 'unsafe_globals'
]


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint cannot be read as plain data (or as weights)."""


class TorchScriptArchiveError(UnsafeCheckpointError):
    """A TorchScript archive (OpenAI's release format): convert it first."""


_CONVERT_HINT = ('Convert it to a plain state dict with `python tools/'
                 'model_converters/clip_to_mmclip.py SRC DST`.')


def _expand(path) -> str:
    return osp.expanduser(str(path))


def _check_exists(path: str) -> None:
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Checkpoint {path!r} does not exist. Check the path; weights '
            'from OpenAI, open_clip or transformers must first be converted '
            'with tools/model_converters/clip_to_mmclip.py.')


def unsafe_globals(path: str) -> List[str]:
    """The globals a checkpoint names beyond ``weights_only=True``'s
    allowlist (empty for plain files), read without loading it.

    Args:
        path (str): A ``torch.save`` file.

    Returns:
        list[str]: Sorted ``module.name`` strings. For torch's legacy
        (non-zip) format, which torch cannot scan, the first one a
        ``weights_only=True`` load stops at.
    """
    path = _expand(path)
    try:
        return sorted(
            torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except ValueError:  # legacy format
        try:
            torch.load(path, map_location='cpu', weights_only=True)
            return []
        except pickle.UnpicklingError as err:
            found = re.search(r'GLOBAL (\S+) was not an allowed', str(err))
            return [found.group(1) if found else 'unknown objects']


def load_checkpoint_file(path: str,
                         map_location: Optional[str] = 'cpu',
                         mmap: bool = False) -> dict:
    """Load a plain checkpoint file with ``weights_only=True``.

    Args:
        path (str): A ``.pth``/``.pt``/``.bin`` file written by
            :func:`torch.save`, or a ``.safetensors`` file.
        map_location (str, optional): Passed to :func:`torch.load`.
            Defaults to ``'cpu'``.
        mmap (bool): Memory-map a zip-format file (what ``torch.save``
            writes since torch 1.6) instead of reading it whole: no copy of
            gigabytes of weights. The file must then stay unchanged while
            the tensors live. Ignored for torch's legacy format. Defaults to
            False.

    Returns:
        dict: What the file holds (a ``.safetensors`` file gives its tensors).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        TorchScriptArchiveError: ``path`` is a TorchScript archive.
        UnsafeCheckpointError: The file holds objects beyond tensors and
            containers; the message names them (read its weights with
            :func:`load_weights`).
    """
    path = _expand(path)
    _check_exists(path)
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device=map_location or 'cpu')
    try:
        return torch.load(path, map_location=map_location, weights_only=True,
                          mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError:
        names = unsafe_globals(path)
        raise UnsafeCheckpointError(
            f'{path!r} is not a plain checkpoint: it names '
            f'{", ".join(names) or "objects beyond tensors"}, which only '
            'executing the pickle could rebuild. Read its weights with '
            'mmclip.utils.load_weights (or load_from in an mmclip run), or '
            + _CONVERT_HINT) from None
    except RuntimeError as err:
        if 'TorchScript' in str(err) or 'torchscript' in str(err):
            raise TorchScriptArchiveError(
                f'{path!r} is a TorchScript archive (as OpenAI released '
                'CLIP). ' + _CONVERT_HINT) from None
        raise


# Globals that rebuild tensors and containers in files written by
# torch.save (storages are resolved by torch.load itself). dtypes, layouts
# and memory formats of the torch module are allowed too (_is_torch_enum).
_TENSOR_GLOBALS = frozenset({
    'collections.OrderedDict', 'builtins.set', 'builtins.frozenset',
    'builtins.complex', 'builtins.bytearray', 'builtins.slice',
    '_codecs.encode', 'torch.Size', 'torch.device',
    'torch._utils._rebuild_tensor', 'torch._utils._rebuild_tensor_v2',
    'torch._utils._rebuild_tensor_v3', 'torch._utils._rebuild_parameter',
    'torch._utils._rebuild_parameter_with_state',
    'torch._tensor._rebuild_from_type_v2',
})


def _is_torch_enum(module: str, name: str) -> bool:
    value = getattr(torch, name, None) if module == 'torch' else None
    return isinstance(value, (torch.dtype, torch.layout, torch.memory_format))


class Refused:
    """Stands in for every class or function a checkpoint names beyond
    :data:`_TENSOR_GLOBALS`: building, calling or filling it does nothing,
    so no code named in the file runs."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return Refused()

    def __setstate__(self, state):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def __setitem__(self, key, value):
        pass


class TensorsOnlyUnpickler(pickle.Unpickler):
    """Restricted unpickler (the ``find_class`` pattern of :mod:`pickle`'s
    documentation): only :data:`_TENSOR_GLOBALS` and torch's dtypes resolve;
    every other global becomes :class:`Refused`, and its name is recorded in
    ``self.refused``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refused = set()

    def find_class(self, module: str, name: str):
        # torch.save writes pickle protocol 2, which spells ``builtins`` as
        # Python 2's ``__builtin__`` (the base class maps it back).
        canonical = 'builtins' if module == '__builtin__' else module
        if f'{canonical}.{name}' in _TENSOR_GLOBALS or _is_torch_enum(
                canonical, name):
            return super().find_class(module, name)
        self.refused.add(f'{canonical}.{name}')
        return Refused


def _tensors_only_pickle_module(refused: set) -> SimpleNamespace:
    """A ``pickle_module`` for :func:`torch.load` whose every unpickling
    (the legacy format's header records too) goes through
    :class:`TensorsOnlyUnpickler`, collecting refused names in ``refused``."""

    class Unpickler(TensorsOnlyUnpickler):

        def load(self):
            try:
                return super().load()
            finally:
                refused.update(self.refused)

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    def loads(data, **kwargs):
        return load(io.BytesIO(data), **kwargs)

    return SimpleNamespace(__name__='mmclip_tensors_only', Unpickler=Unpickler,
                           load=load, loads=loads)


def load_tensors_only(path: str,
                      map_location: Optional[str] = 'cpu'
                      ) -> Tuple[object, List[str]]:
    """``torch.load`` through :class:`TensorsOnlyUnpickler`.

    Args:
        path (str): A checkpoint file.
        map_location (str, optional): Passed to :func:`torch.load`.

    Returns:
        tuple: What the file holds (placeholders included; pass it to
        :func:`weights_of`) and the sorted names that were refused.
    """
    refused = set()
    obj = torch.load(_expand(path), map_location=map_location,
                     weights_only=False,
                     pickle_module=_tensors_only_pickle_module(refused))
    return obj, sorted(refused)


def get_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint (``state_dict``/``model``
    keys or the dict itself), with DDP's ``module.`` prefix removed."""
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if checkpoint and all(k.startswith('module.') for k in checkpoint):
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return checkpoint


def _plain(value):
    """``value`` with placeholders and non-builtin values dropped: only
    str/int/float/bool/None and lists/dicts of them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()
                if isinstance(k, str) and not isinstance(v, Refused)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if not isinstance(v, Refused)]
    return value if isinstance(value, (str, int, float, bool,
                                       type(None))) else None


def weights_of(ckpt: object, path: str) -> dict:
    """The ``state_dict`` (tensors only) and plain ``meta`` of a loaded
    checkpoint.

    Args:
        ckpt (object): What :func:`load_checkpoint_file` or
            :func:`load_tensors_only` returned.
        path (str): The file, for messages.

    Returns:
        dict: ``state_dict`` (name -> tensor, ``module.`` prefix removed)
        and ``meta`` (plain values only; empty when the file has none).

    Raises:
        UnsafeCheckpointError: ``ckpt`` is not a dict, or its weights are
            not all tensors.
    """
    if not isinstance(ckpt, dict):
        raise UnsafeCheckpointError(
            f'{path!r} holds a {type(ckpt).__name__}, not a state dict or a '
            'checkpoint dict. ' + _CONVERT_HINT)
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    state_dict = get_state_dict(ckpt)
    odd = [k for k, v in state_dict.items() if not torch.is_tensor(v)]
    if odd:
        raise UnsafeCheckpointError(
            f'{path!r}: the weights are not all tensors ({odd[:3]} are '
            'Python objects); it is not a model checkpoint mmclip can read.')
    return dict(state_dict=state_dict, meta=_plain(meta))


def read_checkpoint(path: str,
                    map_location: Optional[str] = 'cpu',
                    mmap: bool = False) -> dict:
    """What a checkpoint file holds, without executing anything it names.

    A plain file loads whole with ``weights_only=True`` (an mmclip run's own
    checkpoint, for resuming); any other training checkpoint is read with
    :func:`load_tensors_only` and reduced to its weights and plain ``meta``
    (:func:`weights_of`), logging the names it refused.

    Args:
        path (str): A checkpoint file.
        map_location (str, optional): Passed to :func:`torch.load`.
            Defaults to ``'cpu'``.
        mmap (bool): Memory-map a plain zip-format file, see
            :func:`load_checkpoint_file`. Defaults to False.

    Returns:
        dict: The whole checkpoint of a plain file, else ``state_dict`` and
        ``meta`` only.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: A TorchScript archive, or a file whose
            weights are not plain tensors.
    """
    try:
        return load_checkpoint_file(path, map_location, mmap=mmap)
    except TorchScriptArchiveError:
        raise
    except UnsafeCheckpointError:
        # The weights_only attempt failed: read the file once more, through
        # the restricted unpickler.
        ckpt, refused = load_tensors_only(path, map_location)
        print_log(
            f'Read only the tensors of {path}; not executed: '
            f'{", ".join(refused)}.', logger='current')
        return weights_of(ckpt, path)


def load_weights(path: str, map_location: Optional[str] = 'cpu') -> dict:
    """The model weights (and plain ``meta``) of any checkpoint file, without
    executing anything it names (:func:`read_checkpoint`).

    Args:
        path (str): A checkpoint file.
        map_location (str, optional): Passed to :func:`torch.load`.
            Defaults to ``'cpu'``.

    Returns:
        dict: ``state_dict`` (name -> tensor, ``module.`` prefix removed)
        and ``meta`` (dict, empty when the file has none).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: A TorchScript archive, or a file whose
            weights are not plain tensors.
    """
    return weights_of(read_checkpoint(path, map_location), path)
