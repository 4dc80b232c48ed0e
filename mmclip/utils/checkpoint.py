"""mmengine's checkpoint loading in mmclip runs, and the checkpoint readers.

How mmclip reads a checkpoint without executing it is
:mod:`mmclip.models.utils.checkpoint` (re-exported here, where earlier
versions defined it). mmclip's runs (``tools/train.py``, ``tools/test.py``)
route mmengine's local checkpoint loading (``load_from``, ``resume``,
``init_cfg=dict(type='Pretrained')``) through it while they run
(:func:`mmclip_checkpoint_loading`); ``import mmclip`` changes nothing for
other OpenMMLab code in the process.

torch >= 2.6 loads with ``weights_only=True`` by default, so mmengine's own
loader already refuses to execute a checkpoint; what the override adds is
reading the *weights* of files that are not plain data (an older mmengine
run's ``epoch_N.pth``, an open_clip training checkpoint with its argparse
arguments), which the stock loader refuses outright.
"""
from contextlib import contextmanager
from typing import Callable, Iterator

from mmengine.runner.checkpoint import CheckpointLoader

from mmclip.models.utils.checkpoint import (TorchScriptArchiveError,
                                            UnsafeCheckpointError,
                                            get_state_dict,
                                            load_checkpoint_file,
                                            load_tensors_only, load_weights,
                                            read_checkpoint, unsafe_globals,
                                            weights_of)

__all__ = [
    'UnsafeCheckpointError', 'TorchScriptArchiveError', 'get_state_dict',
    'load_checkpoint_file', 'load_tensors_only', 'load_weights',
    'read_checkpoint', 'weights_of', 'load_from_mmclip',
    'mmclip_checkpoint_loading', 'registered_checkpoint_loader',
    'unsafe_globals'
]


def load_from_mmclip(filename: str, map_location=None) -> dict:
    """mmengine ``CheckpointLoader`` backend for local files in mmclip runs:
    :func:`~mmclip.models.utils.checkpoint.read_checkpoint` (a plain file
    whole, for resuming; any other as its weights and plain ``meta``,
    enough for ``load_from`` and ``init_cfg``). mmengine logs the name's
    tail after 10 characters (``mmclip``)."""
    return read_checkpoint(filename, map_location)


def registered_checkpoint_loader(path: str) -> Callable:
    """The loader mmengine's ``CheckpointLoader`` uses for ``path`` now
    (for a local path, the one registered for the prefix ``''``).

    mmengine (0.10.x) has a public setter, ``register_scheme``, but no
    public getter; this is the lookup it runs itself to dispatch a path.
    The only private name of another library mmclip reads, kept here alone:
    ``tests/test_utils/test_checkpoint.py`` fails if mmengine renames it.

    Args:
        path (str): A checkpoint path, e.g. ``''`` for local files.

    Returns:
        callable: ``loader(filename, map_location) -> dict``.
    """
    return CheckpointLoader._get_checkpoint_loader(path)


@contextmanager
def mmclip_checkpoint_loading() -> Iterator[None]:
    """Let mmengine's loader read local files with :func:`load_from_mmclip`
    while the block runs (an mmclip run), and restore the loader it had
    afterwards, also on errors.

    Uses mmengine's extension point for checkpoint sources,
    ``CheckpointLoader.register_scheme``, for the local-path prefix ``''``.
    """
    previous = registered_checkpoint_loader('')
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_mmclip, force=True)
    try:
        yield
    finally:
        CheckpointLoader.register_scheme(
            prefixes='', loader=previous, force=True)
