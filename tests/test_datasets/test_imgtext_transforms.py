"""LoadImageRGB, SampleCaption, TokenizeText, PackImageText, pipelines."""
import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample
from PIL import Image

from imgtext_helpers import broken_files, encode, odd_mode_files, rgb_image
from mmclip.datasets import (BAD_REASON_KEY, LoadImageRGB, PackImageText,
                             SampleCaption, TokenizeText, build_pipeline,
                             clip_test_pipeline, clip_train_pipeline,
                             config_test_pipeline)
from mmclip.registry import TRANSFORMS


@pytest.fixture(scope='module')
def tokenize():
    return TokenizeText()


def test_registered_names_are_new():
    import mmpretrain.registry as mp
    for name in ('LoadImageRGB', 'SampleCaption', 'TokenizeText',
                 'PackImageText'):
        assert TRANSFORMS.get(name) is not None
        assert name not in mp.TRANSFORMS.module_dict


def test_load_rgb_returns_bgr_uint8(tmp_path):
    img = Image.new('RGB', (5, 3), (255, 0, 0))
    path = tmp_path / 'red.png'
    img.save(path)
    out = LoadImageRGB()(dict(img_path=str(path)))
    assert out['img'].dtype == np.uint8 and out['img'].shape == (3, 5, 3)
    assert out['img'][0, 0].tolist() == [0, 0, 255]  # BGR
    assert out['img_shape'] == out['ori_shape'] == (3, 5)
    rgb = LoadImageRGB(to_bgr=False)(dict(img_path=str(path)))['img']
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert out['img'].flags.writeable and rgb.flags.writeable


def test_load_from_bytes():
    out = LoadImageRGB()(dict(img_bytes=encode(rgb_image(8, 6), 'PNG')))
    assert out['img'].shape == (6, 8, 3) and 'img_bytes' not in out


def test_odd_modes_are_converted(tmp_path):
    files = odd_mode_files(str(tmp_path))
    load = LoadImageRGB(to_bgr=False)
    imgs = {k: load(dict(img_path=p))['img'] for k, p in files.items()}
    for name, img in imgs.items():
        assert img.shape == (16, 24, 3) and img.dtype == np.uint8, name
    assert imgs['cmyk'][0, 0, 0] > 200 and imgs['cmyk'][0, 0, 1] < 60
    # 16-bit: 0 -> 0 and 65535 -> 255, not clipped to white everywhere.
    assert imgs['i16'][0, 0].tolist() == [0, 0, 0]
    assert imgs['i16'][0, -1].tolist() == [255, 255, 255]
    # Transparent palette index -> white background, opaque red stays red.
    assert imgs['palette_alpha'][0, 0].tolist() == [255, 255, 255]
    assert imgs['palette_alpha'][0, -1].tolist() == [255, 0, 0]
    assert imgs['la'][0, 0].tolist() == [255, 255, 255]
    assert imgs['rgba'][0, 0].tolist() == [255, 0, 0]
    assert np.all(np.abs(imgs['grey'].astype(int) - 128) <= 2)
    black = LoadImageRGB(background=(0, 0, 0), to_bgr=False)
    assert black(dict(img_path=files['la']))['img'][0, 0].tolist() == [0] * 3


def test_exif_orientation_applied(tmp_path):
    img = rgb_image(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / 'rot.jpg'
    img.save(path, exif=exif.tobytes())
    assert LoadImageRGB()(dict(img_path=str(path)))['img'].shape == (40, 20,
                                                                     3)
    raw = LoadImageRGB(exif_transpose=False)(dict(img_path=str(path)))
    assert raw['img'].shape == (20, 40, 3)


@pytest.mark.parametrize('kind,reason', [('missing', 'not found'),
                                         ('truncated', 'decode'),
                                         ('random', 'decode'),
                                         ('empty', 'empty file')])
def test_broken_files_give_none_with_reason(tmp_path, kind, reason):
    path = broken_files(str(tmp_path))[kind]
    results = dict(img_path=path)
    assert LoadImageRGB()(results) is None
    assert reason in results[BAD_REASON_KEY]


def test_sample_caption():
    np.random.seed(0)
    t = SampleCaption()
    caps = ['a cat', '  ', 'a dog', 'a bird']
    seen = {t(dict(text=list(caps)))['text'] for _ in range(60)}
    assert seen == {'a cat', 'a dog', 'a bird'}
    assert t(dict(text='  a str ')) == dict(text='a str')
    for bad in (['', ' '], '   ', None, []):
        results = dict(text=bad)
        assert t(results) is None and BAD_REASON_KEY in results


def test_tokenize_text(tokenize):
    out = tokenize(dict(text=' a photo of a cat '))
    assert out['text'] == 'a photo of a cat'
    assert out['text_ids'].shape == (77, )
    assert out['text_ids'].dtype == torch.long
    assert out['text_ids'][0] == 49406
    many = tokenize(dict(text=['a cat', 'a dog', 'a bird']))['text_ids']
    assert many.shape == (3, 77)
    long = tokenize(dict(text='word ' * 200))['text_ids']
    assert long.shape == (77, ) and long[-1] == 49407  # truncated, EOT kept
    for bad in ('', ' \t\n', None, [], ['', '  ']):
        results = dict(text=bad)
        assert tokenize(results) is None
        assert 'caption' in results[BAD_REASON_KEY]


def test_pack_image_text(tokenize):
    results = tokenize(dict(text='a cat', img=np.zeros((4, 6, 3), np.uint8),
                            img_path='x.jpg', gt_label=2))
    packed = PackImageText()(results)
    assert packed['inputs'].shape == (3, 4, 6)
    assert packed['inputs'].dtype == torch.uint8
    sample = packed['data_samples']
    assert isinstance(sample, DataSample)
    assert sample.text == 'a cat' and sample.text_ids.shape == (77, )
    assert sample.gt_label.tolist() == [2] and sample.img_path == 'x.jpg'
    with pytest.raises(KeyError, match='TokenizeText'):
        PackImageText()(dict(text='a', img=np.zeros((2, 2, 3), np.uint8)))


def test_default_pipelines(tmp_path):
    path = tmp_path / 'a.jpg'
    rgb_image(50, 40).save(path)
    train = build_pipeline(clip_train_pipeline(img_size=32))
    out = train(dict(img_path=str(path), text=['a cat', 'a dog']))
    assert out['inputs'].shape == (3, 32, 32)
    assert out['data_samples'].text in ('a cat', 'a dog')
    assert out['data_samples'].text_ids.shape == (77, )
    test = build_pipeline(clip_test_pipeline(img_size=24))
    out = test(dict(img_path=str(path), text=['a cat', 'a dog']))
    assert out['inputs'].shape == (3, 24, 24)
    assert out['data_samples'].text_ids.shape == (2, 77)
    # An empty caption is rejected before the image is decoded.
    results = dict(img_path=str(path), text='')
    assert train(results) is None and 'img' not in results


def test_config_test_pipeline():
    """``test_pipeline`` first, else the test dataloader's; else None."""
    from mmengine.config import Config
    own, loader = clip_test_pipeline(32), clip_test_pipeline(16)
    both = Config(dict(test_pipeline=own, test_dataloader=dict(
        dataset=dict(type='ImageTextDataset', pipeline=loader))))
    assert config_test_pipeline(both) == own
    both.test_pipeline = []
    assert config_test_pipeline(both) == loader
    assert config_test_pipeline(Config(dict(model=dict()))) is None
    assert config_test_pipeline(None) is None


def test_pipeline_builds_under_foreign_default_scope(tmp_path):
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = build_pipeline(clip_train_pipeline(img_size=16))
    assert type(pipeline.transforms[0]).__name__ == 'SampleCaption'


def test_decode_bomb_is_bad(monkeypatch):
    from PIL import Image as PILImage
    monkeypatch.setattr(PILImage, 'MAX_IMAGE_PIXELS', 10)
    results = dict(img_bytes=encode(rgb_image(20, 20), 'PNG'))
    assert LoadImageRGB()(results) is None
    assert 'Decompression' in results[BAD_REASON_KEY]
