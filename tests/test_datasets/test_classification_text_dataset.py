"""ClassificationTextDataset: a classification dataset + prompt templates."""
import numpy as np
import pytest

from imgtext_helpers import write_image
from mmclip.datasets import ClassificationTextDataset, clip_train_pipeline
from mmclip.registry import DATASETS

TEMPLATES = ['a photo of a {}.', 'a drawing of a {}.']


@pytest.fixture
def folder(tmp_path):
    for c, name in enumerate(['cat', 'dog']):
        for i in range(3):
            write_image(str(tmp_path / name / f'{i}.png'), seed=c * 3 + i)
    return str(tmp_path)


def inner(folder):
    return dict(type='CustomDataset', data_root=folder,
                pipeline=[dict(type='LoadImageFromFile')])  # ignored


def test_prompts_from_class_folders(folder):
    np.random.seed(0)
    ds = DATASETS.build(
        dict(type='ClassificationTextDataset', dataset=inner(folder),
             templates=TEMPLATES, pipeline=clip_train_pipeline(img_size=16)))
    assert len(ds) == 6
    assert ds.metainfo['classes'] == ['cat', 'dog']
    info = ds.get_data_info(4)
    assert info['gt_label'] == 1
    assert info['text'] == ['a photo of a dog.', 'a drawing of a dog.']
    texts = set()
    for _ in range(20):
        out = ds[4]
        sample = out['data_samples']
        assert out['inputs'].shape == (3, 16, 16)
        assert sample.text_ids.shape == (77, )
        assert sample.gt_label.tolist() == [1]
        texts.add(sample.text)
    assert texts == set(info['text'])  # a random template per sample


def test_given_classnames(folder, tmp_path):
    names = tmp_path / 'names.txt'
    names.write_text('kitty\n\npuppy\n')
    for classnames in (['kitty', 'puppy'], str(names)):
        ds = ClassificationTextDataset(
            inner(folder), templates='itap of a {}.', classnames=classnames)
        assert ds.get_data_info(0)['text'] == ['itap of a kitty.']
        assert ds.metainfo['classes'] == ['kitty', 'puppy']


def test_bad_arguments(folder):
    with pytest.raises(ValueError, match='one'):
        ClassificationTextDataset(inner(folder), templates=['no slot'])
    ds = ClassificationTextDataset(inner(folder), classnames=['only one'])
    with pytest.raises(IndexError, match='classnames'):
        ds.get_data_info(5)
    with pytest.raises(ValueError, match='SampleCaption'):
        ClassificationTextDataset(
            inner(folder), pipeline=[dict(type='TokenizeText')])
