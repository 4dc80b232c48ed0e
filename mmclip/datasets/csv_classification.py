"""Image classification annotations from a ``filepath,label`` CSV file."""
import csv
import os.path as osp
from typing import List

from mmpretrain.datasets import BaseDataset

from mmclip.errors import ConfigError, shorten_list
from mmclip.registry import DATASETS


@DATASETS.register_module()
class CsvClassificationDataset(BaseDataset):
    """Classification dataset read from a CSV with a header row, e.g. the
    ``val.csv`` that ``tools/dataset_converters/prepare_digits.py`` writes::

        filepath,label
        images/0003.png,3

    Paths are relative to ``data_prefix['img_path']`` (by default
    ``data_root``); labels are integer class indices. With ``classes`` (a
    list or a class-name file, one name a line), every label must index
    one of them: a label the class names do not cover is a
    :class:`~mmclip.errors.ConfigError` naming both files. Everything else
    (``classes``, ``pipeline``, ``test_mode``, ...) is mmpretrain's
    :class:`~mmpretrain.datasets.BaseDataset`.

    Args:
        ann_file (str): The CSV file, relative to ``data_root``.
        path_column (str): Column of the image paths. Defaults to
            ``'filepath'``.
        label_column (str): Column of the class indices. Defaults to
            ``'label'``.
        **kwargs: Passed to :class:`~mmpretrain.datasets.BaseDataset`.
    """

    def __init__(self,
                 ann_file: str,
                 path_column: str = 'filepath',
                 label_column: str = 'label',
                 **kwargs):
        self.path_column = path_column
        self.label_column = label_column
        kwargs.setdefault('data_prefix', '')
        self._classes_source = kwargs.get('classes')
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'Annotation file {self.ann_file} not found. For the digits '
                'data run `python tools/dataset_converters/prepare_digits.py '
                'data/digits` first.')
        prefix = self.data_prefix.get('img_path', '')
        with open(self.ann_file, newline='') as f:
            reader = csv.DictReader(f)
            missing = {self.path_column, self.label_column} - set(
                reader.fieldnames or ())
            if missing:
                raise ValueError(
                    f'{self.ann_file} lacks column(s) {sorted(missing)} (has '
                    f'{reader.fieldnames}); set path_column/label_column.')
            data_list = [
                dict(img_path=osp.join(prefix, row[self.path_column]),
                     gt_label=int(row[self.label_column])) for row in reader
            ]
        self._check_labels(data_list)
        return data_list

    def _check_labels(self, data_list: List[dict]) -> None:
        """Refuse labels outside ``classes`` (when given): the zero-shot
        head and the metrics would index past the class names."""
        classes = self.metainfo.get('classes')
        if not classes:
            return
        bad = sorted({d['gt_label'] for d in data_list
                      if not 0 <= d['gt_label'] < len(classes)})
        if not bad:
            return
        count = sum(not 0 <= d['gt_label'] < len(classes) for d in data_list)
        source = (f'the class-name file {self._classes_source}'
                  if isinstance(self._classes_source, str)
                  else 'the classes given')
        labels = shorten_list([str(b) for b in bad])
        raise ConfigError(
            f'{self.ann_file} has {count} record(s) with labels '
            f'{labels} that {source} does not cover: it names '
            f'{len(classes)} classes (labels 0-{len(classes) - 1}). Add the '
            'missing class names, one a line in label order, or fix the '
            'labels.')
