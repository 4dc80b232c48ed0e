"""LoadImageRGB(decode_min_side=...): large JPEGs decode at a reduced DCT
scale in the training pipelines, everything else at full size."""
import io

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image
from skimage import data as skdata

from conftest import REPO_ROOT
from mmclip.datasets import LoadImageRGB, clip_train_pipeline


def jpeg(size, fmt='JPEG') -> bytes:
    buf = io.BytesIO()
    Image.fromarray(skdata.chelsea()).resize(size, Image.BICUBIC).save(
        buf, fmt)
    return buf.getvalue()


def test_large_jpeg_decodes_at_the_smallest_scale_still_above_the_floor():
    data = jpeg((1600, 1200))
    full = LoadImageRGB()(dict(img_bytes=data))['img']
    small = LoadImageRGB(decode_min_side=448)(dict(img_bytes=data))['img']
    assert full.shape == (1200, 1600, 3)
    assert small.shape == (600, 800, 3)  # 1/2: 1/4 would give 300 < 448
    assert small.dtype == np.uint8 and small.flags.writeable
    # The same picture, in BGR like the full decode: compare it with the
    # full decode shrunk by Pillow (box filter) to the same size.
    shrunk = np.asarray(Image.fromarray(full[..., ::-1]).resize(
        (800, 600), Image.BOX))[..., ::-1]
    assert np.abs(small.astype(int) - shrunk).mean() < 3  # of 255


@pytest.mark.parametrize('size,fmt', [((1024, 768), 'JPEG'),
                                      ((1600, 1200), 'PNG')])
def test_small_jpegs_and_other_formats_decode_in_full(size, fmt):
    img = LoadImageRGB(decode_min_side=448)(dict(img_bytes=jpeg(size, fmt)))
    assert img['img'].shape == (size[1], size[0], 3)
    assert img['img_shape'] == img['ori_shape'] == (size[1], size[0])


def test_decode_min_side_must_be_positive():
    with pytest.raises(ValueError, match='decode_min_side'):
        LoadImageRGB(decode_min_side=0)


def test_training_pipelines_decode_at_twice_the_crop_side():
    loads = [t for t in clip_train_pipeline(336)
             if t['type'] == 'LoadImageRGB']
    assert loads == [dict(type='LoadImageRGB', decode_min_side=672)]
    cfg = Config.fromfile(
        f'{REPO_ROOT}/configs/_base_/datasets/cc3m_wds_clip.py')
    load = next(t for t in cfg.train_pipeline if t['type'] == 'LoadImageRGB')
    assert load['decode_min_side'] == 2 * cfg.img_size
    # Batches are stacked in pinned memory: one host-to-GPU copy a step.
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')
    assert cfg.train_dataloader.pin_memory
