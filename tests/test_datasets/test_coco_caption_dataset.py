"""CocoCaptionDataset: one entry per image, one caption per training step."""
import json

import numpy as np
import pytest

from imgtext_helpers import write_image
from mmclip.datasets import (CocoCaptionDataset, clip_test_pipeline,
                             clip_train_pipeline)

CAPS = {
    10: ['a cat on a mat', 'a sleeping cat'],
    20: ['a dog', 'a brown dog', 'a dog in the park'],
    30: [],  # image without captions: dropped
}


@pytest.fixture
def coco_root(tmp_path):
    images, anns = [], []
    for i, (img_id, caps) in enumerate(CAPS.items()):
        name = f'{img_id:012d}.jpg'
        write_image(str(tmp_path / 'train2017' / name), seed=i)
        images.append(dict(id=img_id, file_name=name))
        anns += [dict(id=len(anns), image_id=img_id, caption=c) for c in caps]
    anns.append(dict(id=99, image_id=12345, caption='orphan'))
    (tmp_path / 'captions.json').write_text(
        json.dumps(dict(images=images, annotations=anns)))
    return tmp_path


def build(root, test_mode, pipeline):
    return CocoCaptionDataset(
        'captions.json', data_root=str(root),
        data_prefix=dict(img_path='train2017'), test_mode=test_mode,
        pipeline=pipeline)


def test_entries_group_captions(coco_root):
    ds = build(coco_root, False, [])
    assert len(ds) == 2
    info = ds.get_data_info(1)
    assert info['text'] == CAPS[20] and info['ori_id'] == 20
    assert info['img_path'].endswith('train2017/000000000020.jpg')
    assert info['gt_text_id'] == [2, 3, 4] and info['image_id'] == 1
    assert ds.get_all_captions() == CAPS[10] + CAPS[20]
    np.testing.assert_array_equal(ds.caption_to_image(), [0, 0, 1, 1, 1])


def test_training_samples_one_caption(coco_root):
    np.random.seed(0)
    ds = build(coco_root, False, clip_train_pipeline(img_size=16))
    texts = set()
    for _ in range(30):
        sample = ds[1]['data_samples']
        assert sample.text_ids.shape == (77, )
        texts.add(sample.text)
    assert texts == set(CAPS[20])


def test_eval_keeps_all_captions(coco_root):
    ds = build(coco_root, True, clip_test_pipeline(img_size=16))
    out = ds[1]
    sample = out['data_samples']
    assert out['inputs'].shape == (3, 16, 16)
    assert sample.text == CAPS[20]
    assert sample.text_ids.shape == (3, 77)
    assert sample.gt_text_id == [2, 3, 4] and sample.image_id == 1
    assert sample.ori_id == 20


def test_training_pipeline_without_sampling_fails(coco_root):
    with pytest.raises(ValueError, match='SampleCaption'):
        build(coco_root, False, clip_test_pipeline(img_size=16))


def test_not_coco_file(tmp_path):
    (tmp_path / 'x.json').write_text(json.dumps(dict(images=[])))
    with pytest.raises(ValueError, match="'annotations'"):
        CocoCaptionDataset(str(tmp_path / 'x.json'))
