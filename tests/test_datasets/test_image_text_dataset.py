"""ImageTextDataset over CSV / TSV / TXT / JSONL / JSON annotation files."""
import json
import os.path as osp

import pytest
import torch

from imgtext_helpers import (logger_to, read_log, write_csv, write_image,
                             write_jsonl)
from mmclip.datasets import ImageTextDataset, clip_train_pipeline
from mmclip.errors import ConfigError
from mmclip.registry import DATASETS

CAPTIONS = ['a dog, running on the beach', 'a "quoted" cat', 'a red car']


@pytest.fixture
def root(tmp_path):
    for i in range(3):
        write_image(str(tmp_path / 'images' / f'{i}.jpg'), seed=i)
    return tmp_path


def rows():
    return [(f'images/{i}.jpg', c) for i, c in enumerate(CAPTIONS)]


def check(ds, root, prefix=''):
    assert len(ds) == 3
    for i in range(3):
        info = ds.get_data_info(i)
        assert info['img_path'] == osp.join(str(root), prefix,
                                            f'images/{i}.jpg')
        assert info['text'] == CAPTIONS[i]
        assert info['sample_idx'] == i


def test_csv(root):
    write_csv(root / 'train.csv', rows())
    ds = ImageTextDataset('train.csv', data_root=str(root))
    check(ds, root)
    assert ds.metainfo == {}


@pytest.mark.parametrize('name', ['train.tsv', 'train.txt'])
def test_tab_separated_by_extension(root, name):
    write_csv(root / name, rows(), sep='\t')
    check(ImageTextDataset(name, data_root=str(root)), root)


def test_explicit_separator_and_keys(root):
    write_csv(root / 'ann.dat', rows(), header=('image', 'caption'), sep='|')
    ds = ImageTextDataset(
        'ann.dat', data_root=str(root), sep='|', img_key='image',
        caption_key='caption')
    check(ds, root)


@pytest.mark.parametrize('name', ['train.jsonl', 'train.json'])
def test_json(root, name):
    records = [dict(filepath=p, title=c, extra=1) for p, c in rows()]
    if name.endswith('.jsonl'):
        write_jsonl(root / name, records)
    else:
        (root / name).write_text(json.dumps(records))
    check(ImageTextDataset(name, data_root=str(root)), root)


def test_absolute_paths_and_prefix(root, tmp_path):
    write_csv(root / 'abs.csv',
              [(str(root / 'images' / '0.jpg'), 'absolute'),
               ('1.jpg', 'relative')])
    ds = ImageTextDataset(
        str(root / 'abs.csv'), data_root=str(root),
        data_prefix=dict(img_path='images'))
    assert ds.get_data_info(0)['img_path'] == str(root / 'images' / '0.jpg')
    assert ds.get_data_info(1)['img_path'] == osp.join(
        str(root), 'images', '1.jpg')


def test_missing_column_fails_at_build(root):
    write_csv(root / 'bad.csv', rows(), header=('path', 'title'))
    with pytest.raises(ValueError) as e:
        ImageTextDataset('bad.csv', data_root=str(root))
    msg = str(e.value)
    assert "'filepath'" in msg and 'bad.csv' in msg
    assert "['path', 'title']" in msg


def test_wrong_separator_hint(root):
    write_csv(root / 'tabs.csv', rows(), sep='\t')  # tabs in a .csv
    with pytest.raises(ValueError, match='separator'):
        ImageTextDataset('tabs.csv', data_root=str(root))


def test_unknown_extension(root):
    write_csv(root / 'ann.dat', rows())
    with pytest.raises(ValueError, match='sep='):
        ImageTextDataset('ann.dat', data_root=str(root))


def test_malformed_rows_dropped_and_logged(root, tmp_path):
    log = logger_to(tmp_path, f'malformed-{tmp_path.name}')
    good = [(f'images/{i % 3}.jpg', f'cap {i}') for i in range(20)]
    path = root / 'm.csv'
    write_csv(path, good)
    with open(path, 'a') as f:
        f.write('only_one_field\n,empty path\n\n')
    ds = ImageTextDataset('m.csv', data_root=str(root))
    assert len(ds) == 20
    assert 'dropped 2 of 22 records' in read_log(log)
    assert '[22, 23]' in read_log(log)
    with pytest.raises(ValueError, match='max_bad_fraction'):
        ImageTextDataset('m.csv', data_root=str(root), max_bad_fraction=0.05)


def test_registry_build_and_pipeline(root):
    write_csv(root / 'train.csv', rows())
    ds = DATASETS.build(
        dict(
            type='ImageTextDataset',
            ann_file='train.csv',
            data_root=str(root),
            pipeline=clip_train_pipeline(img_size=32)))
    out = ds[1]
    assert out['inputs'].shape == (3, 32, 32)
    assert out['inputs'].dtype == torch.uint8
    assert out['data_samples'].text == CAPTIONS[1]
    assert out['data_samples'].text_ids.shape == (77, )
    assert ds.bad_samples.summary()['bad'] == 0


@pytest.mark.parametrize('name', ['empty.csv', 'empty.jsonl'])
def test_no_caption_at_all_fails_at_build_naming_the_fix(root, name):
    """Blank captions are bad samples, skipped in training; a file where
    every caption is blank is a wrong column or an unfinished file: it
    fails at once, and check_captions says so without a full read."""
    records = [(f'images/{i}.jpg', '  ') for i in range(3)]
    if name.endswith('.csv'):
        write_csv(root / name, [r + ('x', ) for r in records],
                  header=('filepath', 'title', 'text'))
    else:
        write_jsonl(root / name, [dict(filepath=p, title=c, text='x')
                                  for p, c in records])
    for build in (
            lambda: ImageTextDataset(name, data_root=str(root)),
            lambda: ImageTextDataset(name, data_root=str(root),
                                     lazy_init=True).check_captions()):
        with pytest.raises(ConfigError) as info:
            build()
        message = str(info.value)
        assert name in message
        assert "column 'title' is empty in all its 3 records" in message
        assert "set caption_key to the column that holds the captions " \
            "(its other columns: ['text'])" in message
    # One caption is enough: the others are skipped as bad samples.
    write_csv(root / 'one.csv', records[:2] + [('images/2.jpg', 'a car')])
    assert len(ImageTextDataset('one.csv', data_root=str(root))) == 3
    ImageTextDataset('one.csv', data_root=str(root),
                     lazy_init=True).check_captions()


def test_a_header_without_records_fails_at_build(root):
    write_csv(root / 'header_only.csv', [])
    with pytest.raises(ConfigError, match='holds no image-caption records'):
        ImageTextDataset('header_only.csv', data_root=str(root))
