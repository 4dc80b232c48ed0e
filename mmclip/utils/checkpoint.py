"""Loading checkpoints without executing pickles.

A ``.pth`` file is a pickle, and unpickling runs whatever the file says.
mmclip therefore loads every checkpoint with ``torch.load(...,
weights_only=True)``, which only rebuilds tensors and plain containers, and
refuses a file that needs more with a message saying what to do.

The one exception is a run's *own* full-state checkpoint (optimizer, message
hub with numpy history, ...), which mmengine writes as a full pickle and reads
back to resume. Files inside a directory registered with
:func:`trust_checkpoints_in` (the run's work dir; ``tools/train.py`` and the
:class:`~mmclip.engine.hooks.TrustWorkDirHook` register it) may be loaded with
full unpickling; nothing else is.

For *weights* (``get_model(pretrained=...)``, inference, the converter),
:func:`load_weights` also reads full training checkpoints from anywhere,
without executing them: its unpickler resolves only the globals
``weights_only=True`` allows and turns every other class or function the
file names into an inert placeholder, then keeps the tensors of
``state_dict`` and the plain values of ``meta``.

:func:`install_mmengine_loader` makes mmengine's ``CheckpointLoader`` (used by
``load_from``, ``resume``, ``init_cfg=dict(type='Pretrained')``) follow the
same rule: mmengine 0.10.7 calls ``torch.load`` without ``weights_only``,
which with torch >= 2.6 fails on its own checkpoints and would otherwise be
fixed by unpickling everything.
"""
import os
import os.path as osp
import pickle
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

import torch

_TRUSTED_DIRS: list = []


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint needs full unpickling and is not from a trusted dir."""


class TorchScriptArchiveError(UnsafeCheckpointError):
    """A TorchScript archive (OpenAI's release format): convert it first."""


def _real(path: str) -> str:
    return osp.realpath(osp.expanduser(str(path)))


def is_trusted(path: str) -> bool:
    """Whether ``path`` lies inside a directory registered as trusted."""
    real = _real(path)
    return any(real.startswith(d.rstrip(os.sep) + os.sep) for d in _TRUSTED_DIRS)


@contextmanager
def trust_checkpoints_in(directory: str) -> Iterator[None]:
    """Allow full-state (pickle) loading of files inside ``directory``.

    Use it only for a directory this process writes, i.e. the run's work dir.

    Args:
        directory (str): The directory to trust while the context is open.
    """
    real = _real(directory)
    _TRUSTED_DIRS.append(real)
    try:
        yield
    finally:
        _TRUSTED_DIRS.remove(real)


def add_trusted_dir(directory: str) -> None:
    """Trust ``directory`` for the rest of the process (see
    :func:`trust_checkpoints_in`)."""
    real = _real(directory)
    if real not in _TRUSTED_DIRS:
        _TRUSTED_DIRS.append(real)


def load_checkpoint_file(path: str,
                         map_location: Optional[str] = 'cpu') -> dict:
    """Load a checkpoint file safely.

    Args:
        path (str): A ``.pth``/``.pt``/``.bin`` file written by
            :func:`torch.save`, or a ``.safetensors`` file.
        map_location (str, optional): Passed to :func:`torch.load`.
            Defaults to ``'cpu'``.

    Returns:
        dict: What the file holds (a ``.safetensors`` file gives its tensors).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: the file needs full unpickling (it carries
            Python objects beyond tensors and containers, or is a TorchScript
            archive) and is not inside a trusted directory.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Checkpoint {path!r} does not exist. Check the path; weights '
            'from OpenAI, open_clip or transformers must first be converted '
            'with tools/model_converters/clip_to_mmclip.py.')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device=map_location or 'cpu')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if is_trusted(path):
            # The run's own full-state checkpoint (see module docstring).
            return torch.load(
                path, map_location=map_location, weights_only=False)
        # torch's message is long; keep the line naming the offending global.
        reason = next((line.strip() for line in str(err).splitlines()
                       if 'Unsupported global' in line), 'not plain tensors')
        raise UnsafeCheckpointError(
            f'Refusing to load {path!r}: it holds Python objects that only a '
            'full unpickle can rebuild, and unpickling a file executes the '
            'code it names. mmclip loads weights with weights_only=True. '
            'Convert the file to a plain state dict with '
            '`python tools/model_converters/clip_to_mmclip.py SRC DST`; to '
            "resume a run, resume from the run's own work dir. "
            f'({reason})') from None
    except RuntimeError as err:
        if 'TorchScript' in str(err) or 'torchscript' in str(err):
            raise TorchScriptArchiveError(
                f'{path!r} is a TorchScript archive (as OpenAI released CLIP). '
                'Convert it first: `python tools/model_converters/'
                'clip_to_mmclip.py SRC DST`.') from None
        raise


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


class _Inert:
    """Stands in for every class or function a checkpoint names beyond
    torch's weights-only allowlist (mmengine's ``HistoryBuffer``, numpy
    reconstructors, ``getattr``, ...). Building, calling or filling it does
    nothing, so no code named in the file runs."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __setstate__(self, state):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def __setitem__(self, key, value):
        pass


def _inert_pickle_module():
    """A ``pickle_module`` for :func:`torch.load` whose unpickler resolves
    only the globals ``weights_only=True`` allows (tensor builders, dtypes,
    containers) and maps every other one to :class:`_Inert`."""
    from types import SimpleNamespace

    from torch import _weights_only_unpickler as wou
    allowed = dict(wou._get_allowed_globals())
    allowed.update(wou._get_user_allowed_globals())

    class Unpickler(pickle.Unpickler):

        def find_class(self, module, name):
            return allowed.get(f'{module}.{name}', _Inert)

    return SimpleNamespace(__name__='mmclip_inert_pickle',
                           Unpickler=Unpickler, load=pickle.load)


def _plain(value):
    """``value`` without placeholders: only str/int/float/bool/None and
    lists/tuples/dicts of them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()
                if isinstance(k, str) and not isinstance(v, _Inert)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if not isinstance(v, _Inert)]
    return value if isinstance(value, (str, int, float, bool,
                                       type(None))) else None


def load_weights(path: str, map_location: Optional[str] = 'cpu') -> dict:
    """The model weights (and plain ``meta``) of any checkpoint file, without
    executing anything it names.

    A weights file loads with ``weights_only=True``
    (:func:`load_checkpoint_file`). A full training checkpoint (mmengine's
    ``epoch_N.pth`` with message hub, optimizer and RNG states, from any
    directory) is read with an unpickler that resolves only the globals
    ``weights_only=True`` allows and replaces every other class or function
    with an inert placeholder; its ``state_dict`` must then hold only
    tensors, and ``meta`` keeps only plain values. Use this for weights
    (inference, conversion, ``get_model(pretrained=...)``); resuming needs
    the real training state and stays limited to trusted dirs.

    Args:
        path (str): A checkpoint file.
        map_location (str, optional): Passed to :func:`torch.load`.
            Defaults to ``'cpu'``.

    Returns:
        dict: ``state_dict`` (name -> tensor, ``module.`` prefix removed)
        and ``meta`` (dict, empty when the file has none).

    Raises:
        UnsafeCheckpointError: A TorchScript archive, or a file whose
            weights are not plain tensors.
    """
    try:
        ckpt = load_checkpoint_file(path, map_location)
    except TorchScriptArchiveError:
        raise
    except UnsafeCheckpointError:
        ckpt = load_without_executing(path, map_location)
    return weights_of(ckpt, path)


def load_without_executing(path: str,
                           map_location: Optional[str] = 'cpu') -> object:
    """``torch.load`` whose unpickler resolves only the globals
    ``weights_only=True`` allows; every other class or function the file
    names becomes an inert placeholder (see :func:`load_weights`).

    Returns:
        object: What the file holds, placeholders included; pass it to
        :func:`weights_of`.
    """
    return torch.load(osp.expanduser(str(path)), map_location=map_location,
                      weights_only=False, pickle_module=_inert_pickle_module())


def weights_of(ckpt: object, path: str) -> dict:
    """The ``state_dict`` (tensors only) and plain ``meta`` of a loaded
    checkpoint (see :func:`load_weights`).

    Raises:
        UnsafeCheckpointError: ``ckpt`` is not a dict, or its weights are
            not all tensors.
    """
    if not isinstance(ckpt, dict):
        raise UnsafeCheckpointError(
            f'{path!r} holds a {type(ckpt).__name__}, not a state dict or a '
            'checkpoint dict.')
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    state_dict = get_state_dict(ckpt)
    odd = [k for k, v in state_dict.items() if not torch.is_tensor(v)]
    if odd:
        raise UnsafeCheckpointError(
            f'{path!r}: the weights are not all tensors ({odd[:3]} are '
            'Python objects); it is not a model checkpoint mmclip can read.')
    return dict(state_dict=state_dict, meta=_plain(meta))


def load_from_local_safe(filename: str, map_location=None) -> dict:
    """mmengine ``CheckpointLoader`` backend for local paths (the name's tail
    after 10 characters, ``local_safe``, is what mmengine logs)."""
    return load_checkpoint_file(filename, map_location)


def install_mmengine_loader() -> None:
    """Route mmengine's local checkpoint loading through
    :func:`load_checkpoint_file` (idempotent)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    if CheckpointLoader._schemes.get('') is not load_from_local_safe:
        CheckpointLoader.register_scheme(
            prefixes='', force=True)(load_from_local_safe)
