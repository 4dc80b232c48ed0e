"""Reading the suite's datasets as they lie on disk: clip_benchmark's
webdataset exports, folders of images per class and torchvision's CIFAR
files. Nothing is downloaded.

A reader gives a :class:`SuiteData`: the class names and templates
that go with the data, and its samples as ``(key, image, label)`` with the
image still encoded (a path, the bytes of a tar member or a decoded array),
so that one unreadable image is counted and named instead of stopping the
run.
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from mmclip.datasets.shard_list import tar_is_complete
from mmclip.errors import ConfigError, MissingFileError, shorten_list
from .catalog import CLASSIFICATION, RETRIEVAL, SuiteDataset

#: An image as a reader gives it: a file path, encoded bytes or an RGB
#: ``(H, W, 3)`` uint8 array.
EncodedImage = Union[str, bytes, np.ndarray]
Sample = Tuple[str, EncodedImage, int]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.jfif')
# clip_benchmark's order of image members in an export sample.
WDS_IMAGE_KEYS = ('webp', 'png', 'jpg', 'jpeg')


@dataclass
class SuiteData:
    """One dataset found on disk.

    Args:
        name (str): The suite's name, e.g. ``'cifar100'``.
        source (str): The folder read.
        classnames (tuple[str]): The class names, in label order.
        templates (tuple[str]): The prompt templates, each with ``{}``.
        samples (callable): ``() -> iterator of (key, image, label)``.
        files (list[str]): The files the samples come from (their sizes and
            times identify this copy of the data).
        read_errors (list[str]): Filled while ``samples`` runs: parts of
            the data that could not be read at all (a truncated shard).
        task (str): clip_benchmark's task name. Defaults to
            ``'zeroshot_classification'``; for ``'zeroshot_retrieval'`` the
            label is the sample's ordinal and ``samples`` fills
            ``captions[ordinal]``.
        captions (dict): Each retrieval sample's captions.
        class_groups (tuple[tuple[int]], optional): Per label, the
            indices of ``classnames`` whose highest logit is the label's
            (ObjectNet's classes as groups of ImageNet's); None when each
            class name is a label. Defaults to None.
        border (int): Pixels cut off each side of every image before the
            model's preprocessing: ObjectNet's photos carry a red frame,
            which its own loader and WiSE-FT's evaluation crop by 2 pixels.
            Defaults to 0.
    """
    name: str
    source: str
    classnames: Tuple[str, ...]
    templates: Tuple[str, ...]
    samples: Callable[[], Iterator[Sample]]
    files: List[str]
    read_errors: List[str] = field(default_factory=list)
    task: str = CLASSIFICATION
    captions: Dict[int, List[str]] = field(default_factory=dict)
    class_groups: Optional[Tuple[Tuple[int, ...], ...]] = None
    border: int = 0


def _read_list(path: str) -> Tuple[str, ...]:
    with open(path, encoding='utf-8') as f:
        return tuple(line.strip() for line in f if line.strip())


def read_wds_export(name: str, folder: str,
                    split: str = 'test') -> SuiteData:
    """A classification export of ``clip_benchmark_export_wds``: shards
    ``{split}/0.tar ...`` (their count in ``{split}/nshards.txt``), each
    sample an image and a ``.cls`` label, with ``classnames.txt`` and
    ``zeroshot_classification_templates.txt`` beside them (templates with
    ``{c}``, as clip_benchmark writes them).

    Args:
        name (str): The dataset's name.
        folder (str): The export folder, e.g. ``data/wds_cifar100``.
        split (str): Defaults to ``'test'`` (clip_benchmark's default).

    Returns:
        SuiteData: Samples in shard order.
    """
    with open(osp.join(folder, split, 'nshards.txt')) as f:
        shards = [
            osp.join(folder, split, f'{i}.tar')
            for i in range(int(f.read().strip()))
        ]
    kind = osp.join(folder, 'dataset_type.txt')
    if osp.isfile(kind) and _read_list(kind) == ('retrieval', ):
        from .retrieval import wds_retrieval_samples
        data = SuiteData(
            name, folder, (), (), files=shards, task=RETRIEVAL,
            samples=lambda: wds_retrieval_samples(shards, data.read_errors,
                                                  data.captions))
        return data
    lists = {}
    for what in ('classnames', 'zeroshot_classification_templates'):
        path = osp.join(folder, f'{what}.txt')
        if not osp.isfile(path):
            raise MissingFileError(
                f'{path} is missing: a zero-shot export holds its class '
                'names and templates (write it with clip_benchmark_export_wds'
                ' or pass --classnames / --templates).')
        lists[what] = _read_list(path)
    data = SuiteData(
        name, folder, lists['classnames'],
        tuple(t.replace('{c}', '{}')
              for t in lists['zeroshot_classification_templates']),
        samples=lambda: ((key, image, int(label)) for key, image, label in
                         wds_samples(shards, data.read_errors)),
        files=shards)
    return data


def wds_samples(shards: List[str], read_errors: List[str],
                target: str = 'cls') -> Iterator[tuple]:
    """``(key, image bytes, target bytes)`` of the samples of ``shards``
    in order; unreadable parts go to ``read_errors``."""
    import webdataset as wds

    def note(err: Exception) -> bool:
        # A shard that cannot be read ends that shard, not the run.
        read_errors.append(f'{type(err).__name__}: {err}')
        return True

    for shard in shards:
        if not tar_is_complete(shard):
            read_errors.append(
                f'{shard}: truncated (no end-of-archive blocks); its samples '
                'after the cut are missing: export or copy it again')
    # Every process reads every shard (the suite splits the samples
    # itself, :func:`~.suite.encode_images`): no node splitting.
    for sample in wds.WebDataset(shards, handler=note, shardshuffle=False,
                                 empty_check=False, nodesplitter=_all_shards):
        key = sample['__key__']
        image = next((sample[k] for k in WDS_IMAGE_KEYS if k in sample), None)
        if target not in sample or image is None:
            read_errors.append(f'{key}: no image and .{target}')
            continue
        yield key, image, sample[target]


def _all_shards(urls):
    return urls


def read_class_folders(spec: SuiteDataset, folder: str) -> SuiteData:
    """One folder of images per class (ImageNet's WordNet ids, ImageNet-V2's
    ``0 ... 999``): the sorted folder names (numerically when all are
    numbers) are the class indices of ``spec.classnames``. With
    mmpretrain's ``meta/<folder name>.txt`` beside the folder, its list of
    images and labels instead. Folders named by WordNet id are checked
    against the ids of the class set (ImageNet's, ImageNet-A's,
    ImageNet-R's).

    Raises:
        ConfigError: The folder count differs from the class count, or the
            WordNet ids from the class set's.
    """
    from mmclip.datasets.zero_shot_data import (resolve_classnames,
                                                resolve_templates)
    classnames = resolve_classnames(spec.classnames)
    templates = resolve_templates(spec.templates)
    # mmpretrain's ImageNet layout: the images listed with their labels in
    # meta/<split>.txt beside the split folder.
    listing = osp.join(osp.dirname(folder), 'meta',
                       osp.basename(folder) + '.txt')
    if osp.isfile(listing):
        return _listed_images(spec.name, folder, listing, classnames,
                              templates)
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    if classes and all(c.isdigit() for c in classes):
        classes.sort(key=int)
    else:
        _check_wnids(spec, folder, classes)
    if len(classes) != len(classnames):
        raise ConfigError(
            f'{folder} has {len(classes)} class folders but {spec.name} has '
            f'{len(classnames)} classes: the folder index is the class, so '
            'every class needs its folder (restore the missing ones, or use '
            'the export wds_' + spec.name + ').')
    files = []
    for label, cls in enumerate(classes):
        for entry in sorted(os.listdir(osp.join(folder, cls))):
            if entry.lower().endswith(IMAGE_EXTENSIONS):
                files.append((osp.join(folder, cls, entry), label))
    return SuiteData(
        spec.name, folder, classnames, templates,
        samples=lambda: ((osp.relpath(p, folder), p, label)
                         for p, label in files),
        files=[p for p, _ in files])


def _check_wnids(spec: SuiteDataset, folder: str,
                 classes: List[str]) -> None:
    """Folders named by WordNet id must be the class set's ids: a missing
    or foreign folder would shift every label after it."""
    from mmclip.datasets.imagenet_wnids import WNID_SETS
    expected = WNID_SETS.get(spec.classnames)
    if expected is None or list(expected) == classes:
        return
    missing = sorted(set(expected) - set(classes))
    foreign = sorted(set(classes) - set(expected))
    raise ConfigError(
        f'{folder}: the class folders are not the {len(expected)} WordNet '
        f'ids of {spec.name} (missing: {shorten_list(missing, 3) or "none"}'
        f'; not of {spec.name}: {shorten_list(foreign, 3) or "none"}); '
        'restore the download as published.')


def _listed_images(name: str, folder: str, listing: str,
                   classnames: Tuple[str, ...],
                   templates: Tuple[str, ...]) -> SuiteData:
    """Images listed as ``relative/path label`` lines (mmpretrain's
    ``meta/val.txt``), paths relative to ``folder``."""
    files = []
    with open(listing) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].isdigit():
                raise ConfigError(
                    f'{listing}, line {number}: expected "path label", got '
                    f'{line.strip()!r}.')
            files.append((osp.join(folder, parts[0]), int(parts[1])))
    return SuiteData(
        name, folder, classnames, templates,
        samples=lambda: ((osp.relpath(p, folder), p, label)
                         for p, label in files),
        files=[listing] + [p for p, _ in files])


def read_torchvision_cifar(spec: SuiteDataset,
                           folder: str) -> SuiteData:
    """torchvision's CIFAR-10/100 test split (``download=False``), with
    torchvision's class names as clip_benchmark uses them."""
    from torchvision import datasets

    from mmclip.datasets.zero_shot_data import resolve_templates
    cls = dict(cifar10=datasets.CIFAR10, cifar100=datasets.CIFAR100)
    data = cls[spec.layout](folder, train=False, download=False)
    files = [osp.join(folder, data.base_folder, name)
             for name, _ in data.test_list]
    return SuiteData(
        spec.name, folder, tuple(data.classes),
        resolve_templates(spec.templates),
        samples=lambda: ((str(i), image, int(label))
                         for i, (image, label) in enumerate(
                             zip(data.data, data.targets))),
        files=files)


def _native_present(spec: SuiteDataset, folder: str) -> bool:
    if spec.layout == 'cifar10':
        return osp.isdir(osp.join(folder, 'cifar-10-batches-py'))
    if spec.layout == 'cifar100':
        return osp.isdir(osp.join(folder, 'cifar-100-python'))
    if spec.layout == 'objectnet':
        return osp.isdir(osp.join(folder, 'images'))
    if spec.layout == 'coco_captions':
        return osp.isfile(osp.join(folder, spec.annotations))
    return osp.isdir(folder)


def find_dataset(spec: SuiteDataset,
                 data_root: str) -> Optional[SuiteData]:
    """The dataset as it lies under ``data_root``: its webdataset export
    (``wds_<name>/``) if there, else its usual download; None when neither
    is (see :meth:`SuiteDataset.where`)."""
    export = osp.join(data_root, spec.wds_folder)
    if osp.isfile(osp.join(export, 'test', 'nshards.txt')):
        return read_wds_export(spec.name, export)
    folder = osp.join(data_root, spec.folder)
    if not spec.layout or not _native_present(spec, folder):
        return None
    if spec.layout == 'class_folders':
        return read_class_folders(spec, folder)
    if spec.layout == 'objectnet':
        from .objectnet import read_objectnet
        return read_objectnet(spec, folder)
    if spec.layout == 'coco_captions':
        from .retrieval import read_coco_captions
        return read_coco_captions(spec, folder)
    return read_torchvision_cifar(spec, folder)
