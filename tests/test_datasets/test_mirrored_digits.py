"""mmclip.datasets.mirrored_digits.prepare_mirrored_digits: 16 classes,
disjoint splits and source images, mirrored pixels, idempotence, the
command line and its one-line error."""
import csv
import os.path as osp
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from conftest import load_tool
from mmclip.datasets import CsvClassificationDataset
from mmclip.datasets.digits import CLASSNAMES as DIGIT_NAMES
from mmclip.datasets.digits import TRAIN_TEMPLATES, digit_image
from mmclip.datasets.mirrored_digits import (CLASSNAMES, MIRRORED_DIGITS,
                                             prepare_mirrored_digits)


@pytest.fixture(scope='module')
def task_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('mirrored'))
    meta = prepare_mirrored_digits(out, train_per_class=6, val_per_class=3)
    assert meta['skipped'] is False
    return out


def read_rows(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_classes_splits_and_counts(task_dir):
    assert len(CLASSNAMES) == 16
    assert CLASSNAMES[:10] == DIGIT_NAMES
    assert CLASSNAMES[10:] == tuple(f'mirrored {DIGIT_NAMES[d]}'
                                    for d in MIRRORED_DIGITS)
    # What makes the task new: no pretraining caption says "mirrored".
    assert not any('mirrored' in t for t in TRAIN_TEMPLATES)
    with open(osp.join(task_dir, 'classnames.txt')) as f:
        assert f.read().splitlines() == list(CLASSNAMES)
    train = read_rows(osp.join(task_dir, 'train.csv'))
    val = read_rows(osp.join(task_dir, 'val.csv'))
    assert Counter(int(r['label']) for r in train) == {c: 6
                                                       for c in range(16)}
    assert Counter(int(r['label']) for r in val) == {c: 3 for c in range(16)}
    # Every source digit is used once: in one split, in one class.
    sources = [r['filepath'].split('_')[1] for r in train + val]
    assert len(set(sources)) == len(sources) == 16 * 9
    dataset = CsvClassificationDataset(
        ann_file='train.csv', data_root=task_dir,
        classes=osp.join(task_dir, 'classnames.txt'))
    assert len(dataset) == 96 and dataset.CLASSES == CLASSNAMES


def test_mirrored_classes_are_flipped_digits(task_dir):
    from sklearn.datasets import load_digits
    digits = load_digits()
    for row in read_rows(osp.join(task_dir, 'val.csv')):
        label = int(row['label'])
        source = int(row['filepath'].split('_')[1][:4])
        pixels = digits.images[source]
        if label >= 10:
            assert digits.target[source] == MIRRORED_DIGITS[label - 10]
            pixels = pixels[:, ::-1]
        else:
            assert digits.target[source] == label
        written = np.asarray(Image.open(osp.join(task_dir, row['filepath'])))
        assert np.array_equal(
            written, np.asarray(digit_image(pixels, 32, 'bilinear')))


def test_same_arguments_write_nothing_new(task_dir):
    meta = prepare_mirrored_digits(task_dir, train_per_class=6,
                                   val_per_class=3)
    assert meta['skipped'] is True and meta['num_train'] == 96


def test_command_line_and_its_error(tmp_path, capsys):
    tool = load_tool('dataset_converters/prepare_mirrored_digits.py')
    out = str(tmp_path / 'm')
    assert tool.main([out, '--train-per-class', '2', '--val-per-class',
                      '1']) == 0
    assert f'{out}: 32 train / 16 val images of 16 classes, written.' in \
        capsys.readouterr().out
    assert tool.main([out, '--train-per-class', '80', '--val-per-class',
                      '20']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ')
    assert 'train_per_class + val_per_class must be at most 88' in err[0]
