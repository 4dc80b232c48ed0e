"""Image-text pairs made from a classification dataset and prompt templates.
"""
import copy
from typing import List, Optional, Sequence, Union

from mmengine.fileio import get_text
from mmengine.registry import DefaultScope

from mmclip.registry import DATASETS
from .base_dataset import ImageTextBaseDataset, check_caption_sampling
from .zero_shot_data import (CLASSNAME_SETS, TEMPLATE_SETS, resolve_classnames,
                             resolve_templates)

#: A few of OpenAI's ImageNet prompt templates, a reasonable default.
DEFAULT_TEMPLATES = (
    'a photo of a {}.',
    'a bad photo of a {}.',
    'a photo of the large {}.',
    'a photo of the small {}.',
    'a close-up photo of a {}.',
    'a bright photo of a {}.',
    'a cropped photo of a {}.',
    'itap of a {}.',
)


def load_classnames(classnames: Union[str, Sequence[str]]) -> List[str]:
    """Class names from a list, a registered set or a text file with one name
    per line.

    Args:
        classnames (str | Sequence[str]): Names, a name of
            :data:`~mmclip.datasets.zero_shot_data.CLASSNAME_SETS`
            (``'imagenet'``: OpenAI's curated ImageNet-1k names), or the path
            of a file.

    Returns:
        List[str]: The names (blank lines of a file skipped).
    """
    if isinstance(classnames, str) and classnames in CLASSNAME_SETS:
        return list(resolve_classnames(classnames))
    if isinstance(classnames, str):
        return [n.strip() for n in get_text(classnames).splitlines()
                if n.strip()]
    return [str(n) for n in classnames]


@DATASETS.register_module()
class ClassificationTextDataset(ImageTextBaseDataset):
    """Wrap a classification dataset into image-caption pairs ("ImageNet
    pretraining").

    The wrapped dataset (any mmpretrain classification dataset config:
    ``CustomDataset`` folder-per-class, ``ImageNet``, ``CIFAR10`` ...) gives
    each image and its ``gt_label``; the caption is a prompt template filled
    with the class name. Each entry carries the list of all prompts of its
    class; in training ``SampleCaption`` draws one template per step
    (checked at build time). The wrapped dataset's own pipeline is ignored
    (its transforms would run before captions exist); put the pipeline on
    the wrapper. ``gt_label`` is kept, so ``PackImageText`` packs it too.

    Data info of each entry: the wrapped dataset's (``img_path``,
    ``gt_label``, ...) plus ``text`` (list of str, one per template).

    Args:
        dataset (dict | BaseDataset): The classification dataset or its
            config, e.g. ``dict(type='CustomDataset', data_root='data/x',
            with_label=True)``.
        templates (Sequence[str] | str): Prompt templates with one ``{}``
            for the class name, or a name of
            :data:`~mmclip.datasets.zero_shot_data.TEMPLATE_SETS`
            (``'openai_imagenet'``: OpenAI's 80). Defaults to
            :data:`DEFAULT_TEMPLATES`.
        classnames (str | Sequence[str], optional): Names to put into the
            templates, one per label, a registered set (``'imagenet'``), or
            a text file with one per line.
            None uses the wrapped dataset's ``metainfo['classes']`` (note
            that mmpretrain's ImageNet names are WordNet synonym lists like
            ``'tench, Tinca tinca'``; pass cleaned names for better prompts).
            Defaults to None.
        pipeline (Sequence[dict]): Transforms. Defaults to ().
        test_mode (bool): Keep all prompts (no ``SampleCaption`` required).
            Defaults to False.
        **kwargs: Other :class:`ImageTextBaseDataset` arguments
            (``max_bad_fraction``, ``min_samples``, ``max_refetch``, ...).
    """

    def __init__(self,
                 dataset: Union[dict, object],
                 templates: Sequence[str] = DEFAULT_TEMPLATES,
                 classnames: Optional[Union[str, Sequence[str]]] = None,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 **kwargs):
        if isinstance(templates, str):
            templates = (list(resolve_templates(templates))
                         if templates in TEMPLATE_SETS else [templates])
        bad = [t for t in templates if t.count('{}') != 1]
        if not templates or bad:
            raise ValueError(
                'templates must be a non-empty list of strings with exactly '
                f"one '{{}}' for the class name; bad: {bad or templates}")
        self.templates = list(templates)
        if isinstance(dataset, dict):
            dataset = copy.deepcopy(dataset)
            dataset['pipeline'] = []  # raw data infos; our pipeline runs
            with DefaultScope.overwrite_default_scope('mmclip'):
                dataset = DATASETS.build(dataset)
        self.dataset = dataset
        names = classnames if classnames is not None else \
            self.dataset.metainfo.get('classes')
        if not names:
            raise ValueError(
                f'{type(self.dataset).__name__} has no metainfo["classes"]; '
                'pass classnames=[...] (one per label) or a classnames.txt.')
        self.classnames = load_classnames(names)
        self._prompts = [[t.format(name) for t in self.templates]
                         for name in self.classnames]
        metainfo = dict(self.dataset.metainfo, classes=self.classnames)
        super().__init__(
            ann_file='', metainfo=metainfo, pipeline=pipeline,
            test_mode=test_mode, serialize_data=False, **kwargs)
        if not test_mode:
            check_caption_sampling(self.pipeline, type(self).__name__)

    def full_init(self) -> None:
        """Initialise the wrapped dataset (entries are read from it)."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        self._fully_initialized = True

    def _source(self) -> str:
        inner = self.dataset
        return (f'{type(inner).__name__}: ' + str(
            getattr(inner, 'ann_file', '') or getattr(inner, 'data_root', '')
            or getattr(inner, 'data_prefix', '?')))

    def load_data_list(self) -> List[dict]:
        """Unused: entries come from the wrapped dataset on demand."""
        return []

    def __len__(self) -> int:
        return len(self.dataset)

    def get_data_info(self, idx: int) -> dict:
        """Entry ``idx`` of the wrapped dataset plus its prompts.

        Args:
            idx (int): Entry index.

        Returns:
            dict: Data info with ``text`` (list of str) added.
        """
        info = copy.deepcopy(self.dataset.get_data_info(idx))
        label = int(info['gt_label'])
        if not 0 <= label < len(self._prompts):
            raise IndexError(
                f'Label {label} of {info.get("img_path", idx)} has no class '
                f'name: {len(self.classnames)} classnames given.')
        info['text'] = list(self._prompts[label])
        info['sample_idx'] = idx
        return info
