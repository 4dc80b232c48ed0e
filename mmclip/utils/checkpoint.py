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
            raise UnsafeCheckpointError(
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
