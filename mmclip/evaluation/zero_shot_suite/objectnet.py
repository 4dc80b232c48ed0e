"""ObjectNet as its download lies: ``objectnet-1.0/images/<folder>/*.png``
and the ``mappings/`` files that tie its classes to ImageNet-1k's.

Of ObjectNet's 313 classes, the 113 that map to ImageNet classes are
scored, labelled by their sorted folder names (clip_benchmark's and
WiSE-FT's order). As WiSE-FT evaluates it, the zero-shot head holds
ImageNet's names of the mapped ImageNet classes, and a class's logit is the
highest of its ImageNet classes' (:func:`~.metrics.group_logits`).
clip_benchmark prompts with ObjectNet's own names instead.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

from mmclip.errors import ConfigError, MissingFileError, shorten_list
from .catalog import SuiteDataset
from .readers import IMAGE_EXTENSIONS, SuiteData

#: Pixels cropped off each side of ObjectNet's photos (their red frame), as
#: ObjectNet's own loader and WiSE-FT's evaluation do.
OBJECTNET_BORDER = 2
#: The download's mapping files (``objectnet-1.0/mappings/``).
MAPPING_FILES = ('folder_to_objectnet_label.json',
                 'objectnet_to_imagenet_1k.json',
                 'pytorch_to_imagenet_2012_id.json',
                 'imagenet_to_label_2012_v2')


def objectnet_classes(mappings: str) -> List[Tuple[str, Tuple[int, ...]]]:
    """``(folder, ImageNet class indices)`` of the ObjectNet classes that
    map to ImageNet-1k, sorted by folder (the label order).

    Args:
        mappings (str): The download's ``mappings`` folder.

    Raises:
        MissingFileError: A mapping file is missing.
    """
    paths = [osp.join(mappings, name) for name in MAPPING_FILES]
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        raise MissingFileError(
            f'{shorten_list(missing, 4)} missing: ObjectNet is read with '
            f'the mapping files of its download ({", ".join(MAPPING_FILES)}'
            f' in objectnet-1.0/mappings/).')
    loaded = []
    for path in paths[:3]:
        with open(path) as f:
            loaded.append(json.load(f))
    folder_labels, imagenet_names_of, pytorch_to_2012 = loaded
    folder_of = {label: folder for folder, label in folder_labels.items()}
    index_of_2012 = {v: int(k) for k, v in pytorch_to_2012.items()}
    with open(paths[3]) as f:
        # Line i names the ImageNet 2012 class with id i.
        index_of_name = {
            line.strip(): index_of_2012[i]
            for i, line in enumerate(f)
        }
    classes = {
        folder_of[label]:
        tuple(index_of_name[name] for name in names.split('; '))
        for label, names in imagenet_names_of.items()
    }
    return sorted(classes.items())


def read_objectnet(spec: SuiteDataset, folder: str) -> SuiteData:
    """The ObjectNet download at ``folder`` (``objectnet-1.0``).

    Raises:
        ConfigError: Class folders are missing (an incomplete download).
    """
    from mmclip.datasets.zero_shot_data import (resolve_classnames,
                                                resolve_templates)
    classes = objectnet_classes(osp.join(folder, 'mappings'))
    images = osp.join(folder, 'images')
    absent = [name for name, _ in classes
              if not osp.isdir(osp.join(images, name))]
    if absent:
        raise ConfigError(
            f'{images} lacks {len(absent)} of the {len(classes)} class '
            f'folders that map to ImageNet ({shorten_list(absent, 3)}): the '
            'download is incomplete; unzip objectnet-1.0.zip again.')
    imagenet_names = resolve_classnames(spec.classnames)
    head_classes = sorted({i for _, indices in classes for i in indices})
    column: Dict[int, int] = {c: n for n, c in enumerate(head_classes)}
    files = []
    for label, (name, _) in enumerate(classes):
        for entry in sorted(os.listdir(osp.join(images, name))):
            if entry.lower().endswith(IMAGE_EXTENSIONS):
                files.append((osp.join(images, name, entry), label))
    return SuiteData(
        spec.name, folder, tuple(imagenet_names[c] for c in head_classes),
        resolve_templates(spec.templates),
        samples=lambda: ((osp.relpath(p, images), p, label)
                         for p, label in files),
        files=[osp.join(folder, 'mappings', m) for m in MAPPING_FILES] +
        [p for p, _ in files],
        class_groups=tuple(
            tuple(column[i] for i in indices) for _, indices in classes),
        border=OBJECTNET_BORDER)
