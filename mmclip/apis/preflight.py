"""Checks made before a Runner is built, so that a user's mistake costs
one line that names the fix instead of a traceback minutes later.

The errors raised here, :class:`ConfigError` and
:class:`MissingFileError`, and the two others mmclip raises on purpose for
bad input (:data:`USER_ERRORS`) are what ``tools/train.py`` and
``tools/test.py`` print as one ``error: ...`` line with exit status 1;
any other exception keeps its traceback (it is a bug).
"""
import difflib
import glob
import inspect
import os
import os.path as osp
import re
from typing import Iterator, Sequence, Tuple

from mmengine.config import Config

from mmclip.datasets.bad_samples import TooManyBadSamplesError
from mmclip.utils.checkpoint import UnsafeCheckpointError

# A config's header states how to prepare its data, e.g.
#   python tools/dataset_converters/prepare_digits.py data/digits
_PREPARE_COMMAND = re.compile(
    r'^#\s*(python \S*tools/dataset_converters/\S+\.py.*)$', re.M)
# s3://, http://, pipe: ... are read by their own backends.
_REMOTE = re.compile(r'^[A-Za-z][\w+.-]+:')


class ConfigError(ValueError):
    """A config or command-line value that cannot work, with its fix."""


class MissingFileError(FileNotFoundError):
    """A file or folder that a config or command line names is missing."""


#: Exceptions whose message is meant for the user (it names the input and
#: the fix); the tools print them without a traceback.
USER_ERRORS = (ConfigError, MissingFileError, UnsafeCheckpointError,
               TooManyBadSamplesError)


def check_config_file(path: str) -> None:
    """Refuse a config path that does not exist, suggesting the nearest
    config names of mmclip (a typo, or a name given without its folder).

    Raises:
        MissingFileError: Naming the path and the closest configs.
    """
    if osp.isfile(path):
        return
    from .model import config_roots
    configs = {}
    for root in config_roots():
        for found in glob.glob(osp.join(root, '**', '*.py'), recursive=True):
            if '_base_' not in found:
                configs.setdefault(osp.splitext(osp.basename(found))[0],
                                   found)
    name = osp.splitext(osp.basename(path))[0]
    close = difflib.get_close_matches(name, list(configs), n=3, cutoff=0.6)
    hint = (' Did you mean ' + ' or '.join(
        _shortest_path(configs[c]) for c in close) + '?') if close else ''
    raise MissingFileError(f'Config {path!r} does not exist.{hint}')


def _shortest_path(path: str) -> str:
    """``path`` relative to the working directory when it is below it."""
    relative = osp.relpath(path)
    return path if relative.startswith('..') else relative


def _dataset_files(dataset: dict, key: str) -> Iterator[Tuple[str, str]]:
    """``(local path, config key that moves it)`` of the annotation files,
    folders and class-name files a dataset config reads, wrapped datasets
    (``dataset``, ``datasets``) included."""
    if not isinstance(dataset, dict) or _downloads(dataset):
        return
    data_root = dataset.get('data_root') or ''
    ann_file = dataset.get('ann_file')
    shards = dataset.get('shards')
    if isinstance(ann_file, str) and ann_file:
        # Joined as mmengine's BaseDataset joins them.
        if osp.isabs(ann_file) or not data_root:
            yield ann_file, f'{key}.ann_file'
        else:
            yield osp.join(data_root, ann_file), f'{key}.data_root'
    elif isinstance(shards, str):
        # webdataset's brace pattern: the folder of the shards.
        yield osp.dirname(shards) or '.', f'{key}.shards'
    elif isinstance(data_root, str) and data_root:
        yield data_root, f'{key}.data_root'
    classes = dataset.get('classes')
    if isinstance(classes, str):  # a file of class names (mmpretrain)
        yield osp.expanduser(classes), f'{key}.classes'
    inner = dataset.get('dataset')
    if isinstance(inner, dict):
        yield from _dataset_files(inner, f'{key}.dataset')
    for i, sub in enumerate(dataset.get('datasets') or []):
        yield from _dataset_files(sub, f'{key}.datasets.{i}')


def _downloads(dataset: dict) -> bool:
    """Whether the dataset fetches missing files itself (mmpretrain's CIFAR,
    MNIST ... with ``download=True``, their default)."""
    download = dataset.get('download')
    if download is not None:
        return bool(download)
    from mmclip.registry import DATASETS
    dataset_type = dataset.get('type')
    dataset_cls = DATASETS.get(dataset_type) if isinstance(
        dataset_type, str) else dataset_type
    if not isinstance(dataset_cls, type):
        return False
    param = inspect.signature(dataset_cls).parameters.get('download')
    return param is not None and param.default is True


def check_data_files(cfg: Config, loaders: Sequence[str]) -> None:
    """Refuse a run whose data is not where the config says, before the
    model is built.

    Args:
        cfg (Config): The loaded config (``cfg.filename`` names it in the
            message).
        loaders (Sequence[str]): The dataloader keys the run reads, e.g.
            ``('train_dataloader', 'val_dataloader')``; missing or None
            ones are skipped.

    Raises:
        MissingFileError: Naming the missing file or folder, the config key
            that points to it, and the fix: the preparation command from the
            comments of the config or its bases when they have one
            (``python tools/dataset_converters/...``), else the config to
            read, or ``--cfg-options`` to point it elsewhere.
    """
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset')
        for path, key in _dataset_files(dataset, f'{loader}.dataset'):
            if _REMOTE.match(path) or osp.exists(path):
                continue
            where = '' if osp.isabs(path) else f' (in {os.getcwd()})'
            commands = _PREPARE_COMMAND.findall(cfg.text)
            prepare = (f'Prepare the data with `{commands[0]}`' if commands
                       else 'Prepare the data as the comments of '
                       f'{cfg.filename} (and of its _base_ files) describe')
            raise MissingFileError(
                f'{path} does not exist{where}: {loader} of {cfg.filename} '
                f'reads it. {prepare}, or point the config at your copy '
                f'with `--cfg-options {key}=...`.')
