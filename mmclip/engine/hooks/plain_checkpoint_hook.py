"""Write training checkpoints that ``torch.load(weights_only=True)`` reads.

mmengine's ``Runner.save_checkpoint`` pickles its message hub as
:class:`~mmengine.logging.HistoryBuffer` objects (whose pickles name
``builtins.getattr`` to rebuild bound methods) and numpy values (``eta``,
datasets' meta). With torch >= 2.6, ``torch.load`` refuses such files unless
told to execute the pickle. :class:`PlainCheckpointHook` turns those objects
into tagged plain data before a checkpoint is written and rebuilds them after
one is read, so every checkpoint of an mmclip run holds only tensors and
Python containers, numbers and strings: mmengine's stock loader (and
``tools/test.py``, ``load_from``, ``init_cfg``, resuming) reads it from any
folder without unpickling code.
"""
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from mmclip.registry import HOOKS

# A dict with this key stands for an object of the named kind.
TAG = '__mmclip_plain__'


def _array_to_plain(array: np.ndarray) -> dict:
    if array.dtype.kind in 'biufc':  # numbers and bools: a compact tensor
        data = torch.from_numpy(np.ascontiguousarray(array).copy())
    else:  # strings and objects: lists of Python values, converted again
        data = to_plain(array.tolist())
    return {TAG: 'ndarray', 'data': data, 'dtype': array.dtype.str}


def to_plain(value: Any) -> Any:
    """``value`` with every :class:`~mmengine.logging.HistoryBuffer`, numpy
    array and numpy scalar replaced by a tagged dict of tensors and Python
    values, recursively through dicts, lists and tuples. Everything else is
    returned as is.

    Args:
        value: A checkpoint or any part of it.

    Returns:
        The same structure, loadable with ``weights_only=True`` if it holds
        nothing else but tensors and Python builtins.
    """
    if isinstance(value, HistoryBuffer):
        logs, counts = value.data
        return {TAG: 'HistoryBuffer', 'log_history': _array_to_plain(logs),
                'count_history': _array_to_plain(counts),
                'max_length': int(value.max_length)}
    if isinstance(value, np.ndarray):
        return _array_to_plain(value)
    if isinstance(value, np.generic):
        return {TAG: 'numpy_scalar', 'value': value.item(),
                'dtype': value.dtype.str}
    if isinstance(value, dict):  # OrderedDict stays OrderedDict
        converted = [(k, to_plain(v)) for k, v in value.items()]
        return type(value)(converted) if type(value) is not dict \
            else dict(converted)
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if type(value) is tuple:  # named tuples are left alone
        return tuple(to_plain(v) for v in value)
    return value


def from_plain(value: Any) -> Any:
    """Undo :func:`to_plain`: rebuild tagged dicts into the objects they
    stand for (numpy arrays and scalars of the original dtype,
    ``HistoryBuffer``), recursively."""
    if isinstance(value, dict):
        kind = value.get(TAG)
        if kind == 'ndarray':
            data = value['data']
            array = data.numpy() if torch.is_tensor(data) else np.array(
                from_plain(data), dtype=object)
            return array.astype(np.dtype(value['dtype']), copy=False)
        if kind == 'numpy_scalar':
            return np.dtype(value['dtype']).type(value['value'])
        if kind == 'HistoryBuffer':
            return HistoryBuffer(
                from_plain(value['log_history']),
                from_plain(value['count_history']),
                max_length=value['max_length'])
        converted = [(k, from_plain(v)) for k, v in value.items()]
        return type(value)(converted) if type(value) is not dict \
            else dict(converted)
    if isinstance(value, list):
        return [from_plain(v) for v in value]
    if type(value) is tuple:
        return tuple(from_plain(v) for v in value)
    return value


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Save checkpoints as plain data, and rebuild that data on load.

    ``before_save_checkpoint`` runs :func:`to_plain` over the whole checkpoint
    (after every other hook has added its part: lowest priority), and
    ``after_load_checkpoint`` runs :func:`from_plain`, before the runner
    hands the message hub, optimizer and schedulers their states. A resumed
    run therefore sees exactly the objects it saved. Checkpoints without tags
    (from other runs) pass through unchanged.

    ``tools/train.py`` adds this hook when a config lacks it, so every
    checkpoint it writes loads with ``torch.load(weights_only=True)``.
    """
    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key, value in list(checkpoint.items()):
            checkpoint[key] = to_plain(value)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key, value in list(checkpoint.items()):
            checkpoint[key] = from_plain(value)
