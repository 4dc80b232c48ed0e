"""The datasets the zero-shot suite knows, their collections and where each
is expected under the data root.

Names and collections are clip_benchmark's (``clip_benchmark/datasets/
builder.py`` of clip-benchmark 1.6.2: ``dataset_collection``), so a
command line written for ``clip_benchmark eval --dataset`` names the same
datasets here. Every dataset is read from clip_benchmark's webdataset
export when one is on disk (``wds_<name>``, the folder names of its
published exports with ``/`` written as ``-``); the datasets below with a
``layout`` are also read from their usual download.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from mmclip.errors import ConfigError

#: clip_benchmark's task names (its JSON files).
CLASSIFICATION = 'zeroshot_classification'
RETRIEVAL = 'zeroshot_retrieval'

#: What a webdataset export holds (clip_benchmark's
#: ``build_wds_dataset`` docstring), said wherever one is missing.
WDS_LAYOUT = {
    CLASSIFICATION: 'test/nshards.txt, test/0.tar ... (samples '
    'KEY.<jpg|png|webp> + KEY.cls), classnames.txt, '
    'zeroshot_classification_templates.txt',
    RETRIEVAL: 'test/nshards.txt, test/0.tar ... (samples KEY.<jpg|png|webp> '
    '+ KEY.txt, its captions one per line), dataset_type.txt saying '
    'retrieval',
}


@dataclass(frozen=True)
class SuiteDataset:
    """One dataset of the suite.

    Args:
        name (str): clip_benchmark's name, e.g. ``'imagenet1k'``.
        layout (str, optional): How its usual download is read:
            ``'class_folders'`` (one folder of images per class),
            ``'cifar10'`` / ``'cifar100'`` (torchvision's
            ``download=False`` files), ``'objectnet'`` (its download's
            ``images/`` and ``mappings/``), ``'coco_captions'`` (a retrieval
            split in the COCO captions layout, read by
            :class:`mmclip.datasets.CocoCaptionDataset`) or None (only the
            webdataset export).
        folder (str): The usual download's folder under the data root.
            Defaults to ``''`` (none).
        classnames (str, optional): Registered class-name set
            (:data:`mmclip.datasets.zero_shot_data.CLASSNAME_SETS`) of the
            usual download; None takes the download's own (torchvision's
            ``classes``, as clip_benchmark does). Defaults to None.
        templates (str): Registered template set for the usual download
            (an export brings its own). Defaults to ``'openai_imagenet'``,
            clip_benchmark's fallback for every dataset without a list.
        task (str): clip_benchmark's task, which says what its export
            holds. Defaults to ``'zeroshot_classification'``.
        annotations (str): The ``'coco_captions'`` layout's JSON, relative
            to ``folder``. Defaults to ``''``.
        image_prefix (str): Its images' folder, relative to ``folder``.
            Defaults to ``''``.
    """
    name: str
    layout: Optional[str] = None
    folder: str = ''
    classnames: Optional[str] = None
    templates: str = 'openai_imagenet'
    task: str = CLASSIFICATION
    annotations: str = ''
    image_prefix: str = ''

    @property
    def wds_folder(self) -> str:
        """The export's folder under the data root, e.g. ``wds_imagenet1k``
        (``vtab/cifar100`` -> ``wds_vtab-cifar100``)."""
        return 'wds_' + self.name.replace('/', '-')

    def where(self) -> str:
        """Where to put it, one line for the missing-dataset list."""
        export = f'{self.wds_folder}/ ({WDS_LAYOUT[self.task]})'
        if not self.layout:
            return export
        native = dict(
            class_folders='one folder of images per class, or the images '
            f'listed in meta/{osp.basename(self.folder)}.txt beside it',
            cifar10="torchvision's cifar-10-batches-py/",
            cifar100="torchvision's cifar-100-python/",
            objectnet='images/<class folder>/ and mappings/ as unzipped '
            'from objectnet-1.0.zip',
            coco_captions=f'{self.annotations}: the Karpathy test split in '
            "COCO's captions layout, as the retrieval configs read it; "
            'images under ' + osp.join(self.folder, self.image_prefix),
        )[self.layout]
        return f'{self.folder}/ ({native}) or {export}'


_IMAGENET_FOLDERS = dict(
    layout='class_folders', classnames='imagenet', templates='openai_imagenet')

#: The datasets with a usual download this suite reads; any other name is
#: read from its webdataset export alone.
DATASETS: Dict[str, SuiteDataset] = {
    spec.name: spec
    for spec in (
        # ImageNet's validation images in WordNet-id folders (mmpretrain's
        # and torchvision's ImageFolder layout): sorted ids = class indices.
        SuiteDataset('imagenet1k', folder='imagenet/val', **_IMAGENET_FOLDERS),
        # ImageNet-V2 matched-frequency as published: folders 0 ... 999.
        SuiteDataset('imagenetv2',
                     folder='imagenetv2/imagenetv2-matched-frequency-format-'
                     'val', **_IMAGENET_FOLDERS),
        SuiteDataset('imagenet_sketch', folder='imagenet_sketch/sketch',
                     **_IMAGENET_FOLDERS),
        # ImageNet-A and -R as published (imagenet-a.tar, imagenet-r.tar):
        # 200 WordNet-id folders each, scored against ImageNet's names of
        # those 200 classes.
        SuiteDataset('imagenet-a', folder='imagenet-a',
                     **dict(_IMAGENET_FOLDERS, classnames='imagenet_a')),
        SuiteDataset('imagenet-r', folder='imagenet-r',
                     **dict(_IMAGENET_FOLDERS, classnames='imagenet_r')),
        # ObjectNet's 113 classes that map to ImageNet's (.objectnet).
        SuiteDataset('objectnet', layout='objectnet', folder='objectnet-1.0',
                     classnames='imagenet', templates='openai_imagenet'),
        # clip_benchmark's cifar templates are OpenAI's 18 (its
        # en_zeroshot_classification_templates.json), names torchvision's.
        SuiteDataset('cifar10', layout='cifar10', folder='cifar10',
                     templates='cifar'),
        SuiteDataset('cifar100', layout='cifar100', folder='cifar100',
                     templates='cifar'),
        # The Karpathy test splits where the retrieval configs read them
        # (configs/_base_/datasets/coco_caption_retrieval.py,
        # flickr30k_retrieval.py).
        SuiteDataset('mscoco_captions', layout='coco_captions',
                     folder='coco', task=RETRIEVAL, annotations='annotations/'
                     'coco_karpathy_test_captions.json'),
        SuiteDataset('flickr8k', task=RETRIEVAL),
        SuiteDataset('flickr30k', layout='coco_captions', folder='flickr30k',
                     task=RETRIEVAL, annotations='annotations/'
                     'flickr30k_karpathy_test_captions.json',
                     image_prefix='flickr30k-images'),
    )
}

#: clip_benchmark's collections (``dataset_collection`` in its
#: ``datasets/builder.py``); the retrieval sets are read from their
#: exports.
COLLECTIONS: Dict[str, List[str]] = {
    'imagenet_robustness':
    ['imagenetv2', 'imagenet_sketch', 'imagenet-a', 'imagenet-r', 'objectnet'],
    'vtab': [
        'vtab/caltech101', 'vtab/cifar100', 'vtab/clevr_count_all',
        'vtab/clevr_closest_object_distance', 'vtab/diabetic_retinopathy',
        'vtab/dmlab', 'vtab/dsprites_label_orientation',
        'vtab/dsprites_label_x_position', 'vtab/dtd', 'vtab/eurosat',
        'vtab/kitti_closest_vehicle_distance', 'vtab/flowers', 'vtab/pets',
        'vtab/pcam', 'vtab/resisc45', 'vtab/smallnorb_label_azimuth',
        'vtab/smallnorb_label_elevation', 'sun397', 'vtab/svhn'
    ],
    'retrieval': ['mscoco_captions', 'flickr8k', 'flickr30k'],
}


def resolve_datasets(names: Sequence[str]) -> List[SuiteDataset]:
    """The datasets that dataset and collection names say, in order,
    each once.

    Args:
        names (Sequence[str]): Dataset names (clip_benchmark's, e.g.
            ``'imagenet1k'``, ``'vtab/dtd'``) and collection names
            (:data:`COLLECTIONS`).

    Returns:
        list[SuiteDataset]: Known datasets with their layouts; any other
        name as a webdataset export.
    """
    specs = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if name.startswith('wds_') or name.startswith('wds/'):
            raise ConfigError(
                f'Name the dataset, not its export folder: pass '
                f'--datasets NAME for {name!r} (the folder wds_NAME under '
                '--data-root is found by itself; vtab/dtd is read from '
                'wds_vtab-dtd).')
        for member in COLLECTIONS.get(name, [name]):
            spec = DATASETS.get(member, SuiteDataset(member))
            if spec not in specs:
                specs.append(spec)
    if not specs:
        raise ConfigError('--datasets names no dataset; give names such as '
                          'imagenet1k,cifar100 or a collection: '
                          f'{", ".join(COLLECTIONS)}.')
    return specs
