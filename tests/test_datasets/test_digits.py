"""mmclip.datasets.digits.prepare_digits: files, counts, loading (as
captions and as labels), the shifted copy, idempotence, prompt hygiene."""
import csv
import os
import os.path as osp
from collections import Counter

import numpy as np
import pytest

from mmclip.datasets import (CsvClassificationDataset, ImageTextDataset,
                             clip_train_pipeline)
from mmclip.datasets.digits import (CLASSNAMES, TRAIN_TEMPLATES,
                                    ZERO_SHOT_TEMPLATES, prepare_digits,
                                    train_caption)
from mmclip.datasets.transforms import LoadImageRGB


@pytest.fixture(scope='module')
def digits_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('digits'))
    meta = prepare_digits(out, size=32, val_fraction=0.2, seed=0)
    assert meta['skipped'] is False
    return out


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_counts_and_files(digits_dir):
    train = read_csv(osp.join(digits_dir, 'train.csv'))
    val = read_csv(osp.join(digits_dir, 'val.csv'))
    assert len(train) + len(val) == 1797
    assert list(train[0]) == ['filepath', 'title', 'label']
    assert list(val[0]) == ['filepath', 'label']
    # Each caption names its row's digit (as a word or a numeral).
    for row in train:
        digit = int(row['label'])
        assert CLASSNAMES[digit] in row['title'].split() or \
            str(digit) in row['title'].split(), row
    assert not {r['filepath'] for r in train} & {r['filepath'] for r in val}
    per_class = Counter(int(r['label']) for r in val)
    assert sorted(per_class) == list(range(10))
    assert all(34 <= n <= 38 for n in per_class.values())  # ~20 % of ~180
    with open(osp.join(digits_dir, 'classnames.txt')) as f:
        assert f.read().split() == list(CLASSNAMES)
    assert len(os.listdir(osp.join(digits_dir, 'images'))) == 1797


def test_images_are_real_pngs(digits_dir):
    rel = read_csv(osp.join(digits_dir, 'val.csv'))[0]['filepath']
    with open(osp.join(digits_dir, rel), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    img = LoadImageRGB()(dict(img_path=osp.join(digits_dir, rel)))['img']
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert img.max() == 255 and img.min() < 128  # white paper, dark ink


def test_train_csv_loads_with_pipeline(digits_dir):
    ds = ImageTextDataset('train.csv', data_root=digits_dir,
                          pipeline=clip_train_pipeline(img_size=32))
    out = ds[0]
    assert out['inputs'].shape == (3, 32, 32)
    assert out['data_samples'].text_ids.shape == (77, )


def test_train_csv_loads_as_labelled_classification(digits_dir):
    ds = CsvClassificationDataset(
        'train.csv', data_root=digits_dir,
        classes=osp.join(digits_dir, 'classnames.txt'))
    train = read_csv(osp.join(digits_dir, 'train.csv'))
    assert len(ds) == len(train)
    info = ds.get_data_info(5)
    assert info['gt_label'] == int(train[5]['label'])
    assert info['img_path'] == osp.join(digits_dir, train[5]['filepath'])
    assert ds.CLASSES == CLASSNAMES


def test_shifted_copy_of_the_held_out_digits(digits_dir):
    val = read_csv(osp.join(digits_dir, 'val.csv'))
    shifted = read_csv(osp.join(digits_dir, 'val_shifted.csv'))
    assert [r['label'] for r in shifted] == [r['label'] for r in val]
    assert [osp.basename(r['filepath']) for r in shifted] == \
        [osp.basename(r['filepath']) for r in val]
    assert all(r['filepath'].startswith('images_shifted/') for r in shifted)

    def load(row):
        return LoadImageRGB()(dict(
            img_path=osp.join(digits_dir, row['filepath'])))['img'].astype(
                np.float32)

    for row, orig in zip(shifted[:20], val[:20]):
        img, ref = load(row), load(orig)
        assert img.shape == ref.shape == (32, 32, 3)
        assert (img == img[..., :1]).all()  # still grey
        img, ref = img[..., 0], ref[..., 0]
        # Noise of std 64 grey levels: white paper (clipped at 255) gets
        # darker by E[max(0, -noise)] = 64 / sqrt(2 pi) = 25.5 on average.
        assert 0.7 < np.mean(img != ref) < 0.95
        assert -32 < (img - ref)[ref == 255].mean() < -19
        # The digit is still there.
        assert np.corrcoef(img.ravel(), ref.ravel())[0, 1] > 0.6


def test_several_phrasings_per_digit(digits_dir):
    train = read_csv(osp.join(digits_dir, 'train.csv'))
    captions = {r['title'] for r in train}
    for label in range(10):
        phrasings = {train_caption(label, t) for t in TRAIN_TEMPLATES}
        assert len(phrasings & captions) >= 4


def test_zero_shot_prompts_never_in_training_captions():
    names = list(CLASSNAMES) + [str(i) for i in range(10)]
    captions = [train_caption(label, t).lower() for label in range(10)
                for t in TRAIN_TEMPLATES]
    for template in ZERO_SHOT_TEMPLATES:
        assert template.count('{}') == 1
        for name in names:
            prompt = template.format(name).lower().rstrip('.')
            assert not any(prompt in c or c in prompt for c in captions), \
                prompt
    # no template is shared with training either, with the slot removed
    train_skeletons = {t.replace('{word}', '{}').replace('{num}', '{}')
                       for t in TRAIN_TEMPLATES}
    assert not train_skeletons & {t.rstrip('.') for t in ZERO_SHOT_TEMPLATES}


def test_idempotent_and_deterministic(digits_dir, tmp_path):
    csv_path = osp.join(digits_dir, 'train.csv')
    before = (os.stat(csv_path).st_mtime_ns, open(csv_path).read())
    assert prepare_digits(digits_dir, size=32, seed=0)['skipped'] is True
    assert (os.stat(csv_path).st_mtime_ns, open(csv_path).read()) == before
    other = prepare_digits(str(tmp_path), size=16, seed=0)
    assert other['skipped'] is False
    # same seed -> same split and captions, whatever the size
    assert open(osp.join(str(tmp_path), 'train.csv')).read() == before[1]
    img = LoadImageRGB()(dict(img_path=osp.join(str(tmp_path),
                                                'images/0000.png')))['img']
    assert img.shape == (16, 16, 3)


def test_labels_outside_the_class_names_are_refused(tmp_path):
    """A labelled CSV whose labels index past its class names (a class the
    class-name file forgot) fails at build, naming both files."""
    from mmclip.datasets import CsvClassificationDataset
    from mmclip.errors import ConfigError
    (tmp_path / 'val.csv').write_text('filepath,label\na.png,0\nb.png,5\n'
                                      'c.png,5\nd.png,-1\n')
    (tmp_path / 'classnames.txt').write_text('zero\none\n')
    with pytest.raises(ConfigError) as info:
        CsvClassificationDataset(
            ann_file='val.csv', data_root=str(tmp_path),
            classes=str(tmp_path / 'classnames.txt'), pipeline=[])
    assert str(info.value) == (
        f'{tmp_path}/val.csv has 3 record(s) with labels -1, 5 that the '
        f'class-name file {tmp_path}/classnames.txt does not cover: it names '
        '2 classes (labels 0-1). Add the missing class names, one a line in '
        'label order, or fix the labels.')
    # Labels within the names, or no class names given: read as before.
    (tmp_path / 'val.csv').write_text('filepath,label\na.png,0\nb.png,1\n')
    assert len(CsvClassificationDataset(
        ann_file='val.csv', data_root=str(tmp_path),
        classes=str(tmp_path / 'classnames.txt'), pipeline=[])) == 2
