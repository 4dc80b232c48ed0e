"""Optional JPEG decoding on the model's device: RandomResizedCropOnDevice
in the workers + DeviceDecodeDataPreprocessor. On the CPU (torchvision's
decode_jpeg on the CPU, the same calls nvJPEG gets on a GPU) the batch
equals the one LoadImageRGB + RandomResizedCrop + ClsDataPreprocessor make.
"""
import io

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from PIL import Image
from skimage import data as skdata

from conftest import tiny_clip_config
from mmclip.datasets import build_pipeline
from mmclip.models.multimodal.clip_model import CLIP_DATA_PREPROCESSOR
from mmclip.registry import MODELS

CROP = dict(scale=32, crop_ratio_range=(0.5, 1.0))


def encoded(photo: str, size, fmt='JPEG', **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(getattr(skdata, photo)()).resize(size, Image.BICUBIC).save(
        buf, fmt, **save)
    return buf.getvalue()


def batches(files, seed=0):
    """The same samples through the device pipeline and the CPU one, with
    the same random crops."""
    device = build_pipeline([dict(type='RandomResizedCropOnDevice', **CROP),
                             dict(type='PackImageText')])
    cpu = build_pipeline([
        dict(type='LoadImageRGB'),
        dict(type='RandomResizedCrop', interpolation='bicubic',
             backend='pillow', **CROP),
        dict(type='PackImageText')])
    out = []
    for pipeline in (device, cpu):
        np.random.seed(seed)
        out.append(pseudo_collate(
            [pipeline(dict(img_bytes=data, img_path=f'{i}.x'))
             for i, data in enumerate(files)]))
    return out


def test_device_path_equals_the_cpu_pipeline():
    files = [encoded('chelsea', (640, 480)), encoded('astronaut', (300, 300)),
             encoded('coffee', (200, 150), 'PNG')]
    device, cpu = batches(files)
    # JPEGs stay encoded with their crop box; the PNG is decoded here.
    assert [x.shape for x in device['inputs']] == [
        (len(files[0]), ), (len(files[1]), ), (3, 32, 32)]
    assert device['data_samples'][0].crop_box == tuple(
        device['data_samples'][0].crop_box)
    assert 'crop_box' not in device['data_samples'][2]
    preprocess = MODELS.build(dict(CLIP_DATA_PREPROCESSOR,
                                   type='DeviceDecodeDataPreprocessor'))
    reference = MODELS.build(CLIP_DATA_PREPROCESSOR)
    got = preprocess(device, training=True)['inputs']
    want = reference(cpu, training=True)['inputs']
    assert got.shape == want.shape == (3, 3, 32, 32)
    # Normalised units (1/255 / std ~ 0.015 a grey level): libjpeg's and
    # torchvision's decoders, Pillow's and torch's antialiased bicubic agree
    # to about a grey level.
    diff = (got - want).abs()
    assert diff[2].max() == 0  # decoded by the same code
    assert diff[:2].mean() < 0.02 and diff[:2].max() < 0.3


def test_files_the_device_would_decode_differently_stay_on_the_cpu():
    rotated = Image.fromarray(skdata.chelsea())
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotated 90 degrees
    buf = io.BytesIO()
    rotated.save(buf, 'JPEG', exif=exif)
    cmyk = io.BytesIO()
    rotated.convert('CMYK').save(cmyk, 'JPEG')
    whole = encoded('chelsea', (64, 48))
    files = [buf.getvalue(), cmyk.getvalue(), whole]
    device, cpu = batches(files)
    assert [x.ndim for x in device['inputs']] == [3, 3, 1]
    for a, b in zip(device['inputs'][:2], cpu['inputs'][:2]):
        assert torch.equal(a, b)
    # A truncated download is not handed to the device: the CPU path
    # reports it as a bad sample.
    load = build_pipeline([dict(type='RandomResizedCropOnDevice', **CROP)])
    results = dict(img_bytes=whole[:len(whole) // 2], img_path='cut.jpg')
    assert load(results) is None
    assert 'cannot decode' in results['bad_sample_reason']


def test_clip_model_trains_on_device_decoded_batches():
    model = MODELS.build(dict(
        tiny_clip_config(), head=dict(type='CLIPContrastiveHead'),
        data_preprocessor=dict(CLIP_DATA_PREPROCESSOR,
                               type='DeviceDecodeDataPreprocessor')))
    pipeline = build_pipeline([
        dict(type='TokenizeText'),
        dict(type='RandomResizedCropOnDevice', **CROP),
        dict(type='PackImageText')])
    batch = pseudo_collate([
        pipeline(dict(img_bytes=encoded(photo, (96, 64)), text=photo))
        for photo in ('chelsea', 'astronaut', 'coffee')])
    loss = model(**model.data_preprocessor(batch, True), mode='loss')['loss']
    assert torch.isfinite(loss)
    loss.backward()


@pytest.mark.parametrize('bad', [b'\xff\xd8\xff' + b'\0' * 20 + b'\xff\xd9'])
def test_a_jpeg_the_device_cannot_decode_falls_back_to_pillow(bad, mm_log):
    from mmpretrain.structures import DataSample
    preprocess = MODELS.build(dict(CLIP_DATA_PREPROCESSOR,
                                   type='DeviceDecodeDataPreprocessor'))
    good = encoded('chelsea', (64, 48))
    sample = DataSample(metainfo=dict(img_path='x.jpg', img_shape=(32, 32)))
    sample.set_field((0, 0, 48, 64), 'crop_box')
    other = sample.clone()
    inputs = [torch.frombuffer(bytearray(data), dtype=torch.uint8)
              for data in (good, good)]
    out = preprocess(dict(inputs=inputs, data_samples=[sample, other]))
    assert out['inputs'].shape == (2, 3, 32, 32)
    # Undecodable by both: Pillow's error, after the warning naming it.
    inputs[1] = torch.frombuffer(bytearray(bad), dtype=torch.uint8)
    with pytest.raises(Exception):
        preprocess(dict(inputs=inputs, data_samples=[sample, other]))
    assert any('x.jpg' in m and 'Pillow' in m for m in mm_log)
