"""Checks made before a Runner is built, so that a user's mistake costs
one line that names the fix instead of a traceback minutes later.

The errors raised here, :class:`~mmclip.errors.ConfigError` and
:class:`~mmclip.errors.MissingFileError`, and the others mmclip raises
on purpose for bad input (:data:`USER_ERRORS`) are what the tools print as
one ``error: ...`` line with exit status 1 (:func:`mmclip.apis.cli.run_tool`);
any other exception keeps its traceback (it is a bug).
"""
import difflib
import glob
import inspect
import os
import os.path as osp
import re
from typing import Dict, Iterator, Optional, Sequence, Tuple

from mmengine.config import Config

from mmclip.datasets.bad_samples import TooManyBadSamplesError
from mmclip.errors import ConfigError, MissingFileError
from mmclip.models.pretrained import CheckpointMismatchError
from mmclip.utils.checkpoint import UnsafeCheckpointError

__all__ = [
    'ConfigError', 'MissingFileError', 'USER_ERRORS', 'check_accumulation',
    'check_config_file', 'check_checkpoint', 'check_data_files',
    'check_model_files'
]

# A config's header states how to prepare its data, e.g.
#   python tools/dataset_converters/prepare_digits.py data/digits
_PREPARE_COMMAND = re.compile(
    r'^#\s*(python \S*tools/dataset_converters/\S+\.py.*)$', re.M)
# s3://, http://, pipe: ... are read by their own backends.
_REMOTE = re.compile(r'^[A-Za-z][\w+.-]+:')

#: Exceptions whose message is meant for the user (it names the input and
#: the fix); the tools print them without a traceback.
USER_ERRORS = (ConfigError, MissingFileError, UnsafeCheckpointError,
               TooManyBadSamplesError, CheckpointMismatchError)


def _missing(path: str) -> str:
    """``'PATH does not exist'``, with the working directory a relative
    path was looked up in."""
    where = '' if osp.isabs(path) else f' (in {os.getcwd()})'
    return f'{path} does not exist{where}'


def _leaf_configs() -> Dict[str, str]:
    """Config name -> path of every config of mmclip but the ``_base_``
    ones."""
    from .model import config_roots
    configs = {}
    for root in config_roots():
        for found in glob.glob(osp.join(root, '**', '*.py'), recursive=True):
            if '_base_' not in found:
                configs.setdefault(osp.splitext(osp.basename(found))[0],
                                   found)
    return configs


def check_config_file(path: str) -> None:
    """Refuse a config path that does not exist, suggesting the nearest
    config names of mmclip (a typo, or a name given without its folder).

    Raises:
        MissingFileError: Naming the path and the closest configs.
    """
    if osp.isfile(path):
        return
    configs = _leaf_configs()
    name = osp.splitext(osp.basename(path))[0]
    close = difflib.get_close_matches(name, list(configs), n=3, cutoff=0.6)
    hint = (' Did you mean ' + ' or '.join(
        _shortest_path(configs[c]) for c in close) + '?') if close else ''
    raise MissingFileError(f'Config {path!r} does not exist.{hint}')


def _shortest_path(path: str) -> str:
    """``path`` relative to the working directory when it is below it."""
    relative = osp.relpath(path)
    return path if relative.startswith('..') else relative


def _nested_datasets(dataset: dict, key: str) -> Iterator[Tuple[dict, str]]:
    """``(dataset config, its config key)`` of ``dataset`` and of the
    datasets it wraps (``dataset``, ``datasets``), at any depth."""
    if not isinstance(dataset, dict):
        return
    yield dataset, key
    yield from _nested_datasets(dataset.get('dataset'), f'{key}.dataset')
    for i, sub in enumerate(dataset.get('datasets') or []):
        yield from _nested_datasets(sub, f'{key}.datasets.{i}')


def _dataset_files(dataset: dict, key: str) -> Iterator[Tuple[str, str]]:
    """``(local path, config key that moves it)`` of the annotation files,
    folders and class-name files a dataset config reads, wrapped datasets
    included."""
    for dataset, key in _nested_datasets(dataset, key):
        if _downloads(dataset):
            continue
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


def _dataset_class(dataset: dict) -> Optional[type]:
    """The class a dataset config builds, None if it names no registered
    class."""
    from mmclip.registry import DATASETS
    dataset_type = dataset.get('type')
    dataset_cls = DATASETS.get(dataset_type) if isinstance(
        dataset_type, str) else dataset_type
    return dataset_cls if isinstance(dataset_cls, type) else None


def _downloads(dataset: dict) -> bool:
    """Whether the dataset fetches missing files itself (mmpretrain's CIFAR,
    MNIST ... with ``download=True``, their default)."""
    download = dataset.get('download')
    if download is not None:
        return bool(download)
    dataset_cls = _dataset_class(dataset)
    if dataset_cls is None:
        return False
    param = inspect.signature(dataset_cls).parameters.get('download')
    return param is not None and param.default is True


def check_data_files(cfg: Config, loaders: Sequence[str]) -> None:
    """Refuse a run whose data is not where the config says, whose
    captions are all empty or whose labels have no class name, before the
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
        ConfigError: A caption file (``ImageTextDataset``) holds no caption
            (:meth:`~mmclip.datasets.ImageTextDataset.check_captions`), or a
            labelled CSV (``CsvClassificationDataset``) has labels that its
            class names do not cover.
    """
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset')
        for path, key in _dataset_files(dataset, f'{loader}.dataset'):
            if _REMOTE.match(path) or osp.exists(path):
                continue
            command = _prepare_command(cfg.text, path)
            prepare = (f'Prepare the data with `{command}`' if command
                       else 'Prepare the data as the comments of '
                       f'{cfg.filename} (and of its _base_ files) describe')
            raise MissingFileError(
                f'{_missing(path)}: {loader} of {cfg.filename} '
                f'reads it. {prepare}, or point the config at your copy '
                f'with `--cfg-options {key}=...`.')
        _check_annotations(dataset, f'{loader}.dataset', cfg.filename)


def _prepare_command(cfg_text: str, path: str) -> Optional[str]:
    """The preparation command of a config's comments that writes
    ``path``: the one naming ``path``'s folder or a folder above it, else
    the first (a config reading two prepared sets, such as a fine-tune
    with replayed pretraining data, states both), else None."""
    commands = _PREPARE_COMMAND.findall(cfg_text)
    path = osp.normpath(path)
    for command in commands:
        for word in command.split()[2:]:
            folder = osp.normpath(word)
            if path == folder or path.startswith(folder + os.sep):
                return command
    return commands[0] if commands else None


def _check_annotations(dataset: dict, key: str, config: str) -> None:
    """Refuse caption files (``ImageTextDataset``'s) without any caption,
    reading each only up to its first caption, and labelled CSV files
    (``CsvClassificationDataset``'s) with labels their class names do not
    cover."""
    from mmclip.datasets import CsvClassificationDataset, ImageTextDataset
    for dataset, key in _nested_datasets(dataset, key):
        dataset_cls = _dataset_class(dataset)
        if dataset_cls is None:
            continue
        options = {k: v for k, v in dataset.items() if k != 'type'}
        options.update(pipeline=[])
        try:
            if issubclass(dataset_cls, ImageTextDataset):
                dataset_cls(**options, lazy_init=True).check_captions()
            elif issubclass(dataset_cls, CsvClassificationDataset):
                dataset_cls(**options)  # reads the labels, checks them
        except ConfigError as err:
            option = ('caption_key=COLUMN` sets the column'
                      if issubclass(dataset_cls, ImageTextDataset) else
                      'classes=FILE` names another class-name file')
            raise ConfigError(f'{err} ({key} of {config}; `--cfg-options '
                              f'{key}.{option}.)') from None


def _weights_source(path: str) -> str:
    """How to get the checkpoint ``path``: the training run that writes it
    when it lies in the work dir of one of mmclip's configs
    (``work_dirs/{config name}/epoch_N.pth``), else the converter."""
    parts = osp.normpath(path).split(os.sep)
    if 'work_dirs' in parts[:-2]:
        config = _leaf_configs().get(parts[parts.index('work_dirs') + 1])
        if config:
            return ('It is written by training: run `python tools/train.py '
                    f'{_shortest_path(config)}` first')
    return ('Convert released weights with `python tools/model_converters/'
            'clip_to_mmclip.py SRC OUT.pth`')


def check_checkpoint(path: Optional[str], argument: str) -> None:
    """Refuse a checkpoint given on the command line (or to an API function)
    that does not exist, before any work.

    Args:
        path (str, optional): The checkpoint; None and remote URLs
            (``s3://...``, ``https://...``) pass.
        argument (str): What names it, the start of the message, e.g.
            ``'CHECKPOINT'`` or ``'--checkpoint'``.

    Raises:
        MissingFileError: Naming the path, the argument and how to get the
            file (see :func:`_weights_source`).
    """
    if path is None or _REMOTE.match(path) or osp.isfile(
            osp.expanduser(path)):
        return
    raise MissingFileError(f'{argument} {_missing(path)}. '
                           f'{_weights_source(path)}.')


def _model_files(node, key: str,
                 init_weights: bool) -> Iterator[Tuple[str, str, bool]]:
    """``(path, config key, is weights)`` of the local files a model config
    reads: every ``checkpoint`` of an ``init_cfg`` (mmengine's
    ``Pretrained``, mmclip's ``ZeroShotInit``; lists of them included)
    and the class-name and template ``.txt`` files of zero-shot heads and
    ``ZeroShotInit``, at any depth. ``init_cfg`` entries only with
    ``init_weights`` (they are read by ``model.init_weights()``, which
    training runs and evaluation does not)."""
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _model_files(item, f'{key}.{i}', init_weights)
        return
    if not isinstance(node, dict):
        return
    # ZeroShotInit builds its CLIP without the heads and init_cfg.
    zero_shot_init = str(node.get('type', '')).endswith('ZeroShotInit')
    for name, value in node.items():
        sub = f'{key}.{name}'
        if isinstance(value, str) and name == 'checkpoint':
            yield osp.expanduser(value), sub, True
        elif (isinstance(value, str) and name in ('classnames', 'templates')
              and value.endswith('.txt')):
            yield osp.expanduser(value), sub, False
        elif not (name == 'init_cfg' and not init_weights
                  or name == 'clip' and zero_shot_init):
            yield from _model_files(value, sub, init_weights)


def check_model_files(cfg: Config, init_weights: bool = True) -> None:
    """Refuse a config whose model reads a file that is not there, before
    the Runner is built: ``load_from``, the ``checkpoint`` of every
    ``init_cfg`` and the class-name / template ``.txt`` files (see
    :func:`_model_files`).

    Args:
        cfg (Config): The loaded config (``cfg.filename`` names it in the
            message).
        init_weights (bool): Whether the run initialises the model's
            weights from its ``init_cfg`` (training does; evaluation loads
            a checkpoint instead and leaves them out). Defaults to True.

    Raises:
        MissingFileError: Naming the missing file, the config key that
            points to it and the fix: for weights, the training command or
            the converter (:func:`_weights_source`); in any case
            ``--cfg-options KEY=...`` to point it elsewhere.
    """
    files = list(_model_files(cfg.get('model'), 'model', init_weights))
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and not cfg.get('resume'):
        files.append((osp.expanduser(load_from), 'load_from', True))
    for path, key, is_weights in files:
        if _REMOTE.match(path) or osp.isfile(path):
            continue
        fix = (_weights_source(path) if is_weights else
               'Write it (one entry per line), or name a registered set or '
               'give a list')
        raise MissingFileError(
            f'{_missing(path)}: {key} of {cfg.filename} names it. {fix}, or '
            f'point the config at your copy with `--cfg-options {key}=...`.')


def check_accumulation(cfg: Config) -> None:
    """Refuse a ``model.accum_steps`` (gradient accumulation of
    :class:`~mmclip.models.CLIPModel`) that cannot split the batch, before
    the runner is built.

    ``train_dataloader.batch_size`` is the batch of one process and of the
    loss; it is cut into ``accum_steps`` micro-batches of equal size.

    Raises:
        ConfigError: ``accum_steps`` is not a positive integer, does not
            divide the batch size, or is combined with mmengine's
            ``optim_wrapper.accumulative_counts`` (one loss per micro-batch,
            the other kind of accumulation).
    """
    steps = (cfg.get('model') or {}).get('accum_steps', 1)
    if steps == 1:
        return
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(
            f'model.accum_steps={steps!r} in {cfg.filename} must be a '
            'positive integer: the number of micro-batches each batch is '
            'split into (1: no accumulation).')
    batch = (cfg.get('train_dataloader') or {}).get('batch_size')
    if isinstance(batch, int) and batch % steps:
        divisors = [d for d in range(2, batch + 1) if batch % d == 0]
        nearest = min(divisors, key=lambda d: abs(d - steps), default=1)
        raise ConfigError(
            f'model.accum_steps={steps} does not divide '
            f'train_dataloader.batch_size={batch} of {cfg.filename} (the '
            f'batch of one process, split into {steps} equal micro-'
            f'batches): set the batch size to a multiple of {steps} (e.g. '
            f'{-(-batch // steps) * steps}) or accum_steps to a divisor of '
            f'{batch} (e.g. {nearest}), with --cfg-options.')
    counts = (cfg.get('optim_wrapper') or {}).get('accumulative_counts', 1)
    if counts != 1:
        raise ConfigError(
            f'model.accum_steps={steps} and optim_wrapper.'
            f'accumulative_counts={counts} in {cfg.filename} both accumulate '
            'gradients: keep accum_steps (one contrastive loss over the '
            'whole batch) and set accumulative_counts=1.')
