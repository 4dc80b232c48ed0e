"""The int8 image tower (mmclip.deployment.quantize_image_tower,
Int8ImageEncoder, OnnxCLIP(int8=True), pytorch2onnx.py --int8) and how
closely it follows float32 (mmclip.benchmarks.int8)."""
import csv
import json
import os.path as osp

import numpy as np
import pytest
import torch
from skimage import data as skdata
from sklearn.datasets import load_digits

from conftest import REPO_ROOT, load_tool
from mmclip.apis import OnnxCLIP, get_model
from mmclip.benchmarks.int8 import (format_int8_table, int8_agreement,
                                    measure_int8_image_encode, topk_overlap)
from mmclip.datasets.digits import CLASSNAMES, ZERO_SHOT_TEMPLATES, digit_image
from mmclip.deployment import (META_FILE, Int8ImageEncoder, export_onnx,
                               quantize_image_tower)
from mmclip.errors import ConfigError, MissingFileError

DIGITS_CFG = osp.join(REPO_ROOT, 'configs', 'clip',
                      'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')
TRAIN_CFG = osp.join(REPO_ROOT, 'configs', 'clip',
                     'clip_vit-tiny-p8_1xb32-24e_digits-32px.py')
NO_CACHE = {'model.predict_head.cache_dir': None}
#: Epochs of the trained digits CLIP (the config's 24 take 3x as long for
#: a model that only needs to be trained, not good).
TRAIN_EPOCHS = 8
#: The tiny digits tower's matmuls with a weight in its blocks: 4 blocks x
#: (qkv, attention out, MLP in, MLP out); the final projection stays fp32.
TINY_WEIGHT_MATMULS = 4 * 4


def sample_images(count: int = 40) -> list:
    """scikit-image photos and scikit-learn digits as uint8 RGB arrays."""
    photos = [getattr(skdata, name)() for name in
              ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera')]
    photos = [np.stack([p] * 3, -1) if p.ndim == 2 else p for p in photos]
    digits = load_digits().images
    return photos + [np.asarray(digit_image(digits[i], 32, 'bilinear')
                                .convert('RGB'))
                     for i in range(count - len(photos))]


@pytest.fixture(scope='module')
def fp32_export(tmp_path_factory):
    """The digits CLIP (random weights) exported, float32 towers only."""
    torch.manual_seed(0)
    out = str(tmp_path_factory.mktemp('fp32_export'))
    export_onnx(get_model(DIGITS_CFG, cfg_options=NO_CACHE), out,
                verify=False)
    return out


@pytest.fixture(scope='module', params=['dynamic', 'static'])
def int8_export(request, fp32_export, tmp_path_factory):
    """``(folder, entry)``: a copy of :func:`fp32_export` with its image
    tower quantised by each method."""
    import shutil
    out = str(tmp_path_factory.mktemp(request.param))
    shutil.copytree(fp32_export, out, dirs_exist_ok=True)
    entry = quantize_image_tower(out, method=request.param,
                                 calibration_images=sample_images(16))
    return out, entry


def test_quantize_writes_the_int8_tower_and_its_sidecar_entry(int8_export):
    out, entry = int8_export
    assert osp.isfile(osp.join(out, 'image_int8.onnx'))
    with open(osp.join(out, META_FILE)) as f:
        meta = json.load(f)
    assert meta['image_int8'] == entry
    assert meta['image']['file'] == 'image_encoder.onnx'  # float32 kept
    # dynamic: the weight matmuls only; static: also the two attention
    # products of every block.
    assert entry['quantized_matmuls'] == (
        TINY_WEIGHT_MATMULS if entry['method'] == 'dynamic' else
        TINY_WEIGHT_MATMULS + 2 * 4)
    assert entry['calibration_images'] == (16 if entry['method'] == 'static'
                                           else None)


def test_int8_encoder_embeds_close_to_fp32(int8_export):
    """Normalised (B, D) float32 rows whose cosine to the float32 tower's
    is high for every image; OnnxCLIP(int8=True) gives the same rows."""
    out, _ = int8_export
    encoder = Int8ImageEncoder(out, num_threads=1)
    images = sample_images()
    batch = encoder.preprocess(images)
    assert batch.shape == (len(images), 3, 32, 32)
    assert batch.dtype == np.float32
    emb = encoder.encode(batch)
    assert emb.shape == (len(images), 64) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    fp32 = OnnxCLIP(out, cache_dir=None).encode_image(batch, normalize=True)
    cosine = np.sum(emb * fp32, axis=1)
    # Measured (random weights): >= 0.9999 dynamic, >= 0.999 static.
    assert cosine.min() >= 0.995
    int8_clip = OnnxCLIP(out, cache_dir=None, int8=True)
    np.testing.assert_allclose(int8_clip.encode_image(images, normalize=True),
                               emb, atol=1e-6)
    with pytest.raises(ValueError, match='preprocess'):
        encoder.encode(np.zeros((2, 3, 224, 224), np.float32))


def test_missing_export_or_int8_tower_names_the_command(tmp_path,
                                                        fp32_export):
    empty = str(tmp_path / 'nothing_here')
    for make in (lambda: Int8ImageEncoder(empty),
                 lambda: quantize_image_tower(empty)):
        with pytest.raises(MissingFileError,
                           match=r'pytorch2onnx\.py CONFIG CHECKPOINT --out '
                           r'.*nothing_here --int8'):
            make()
    for make in (lambda: Int8ImageEncoder(fp32_export),
                 lambda: OnnxCLIP(fp32_export, int8=True)):
        with pytest.raises(MissingFileError,
                           match='no int8 image tower.*quantize_image_tower'):
            make()


def test_unknown_method_or_static_without_images_is_refused(fp32_export):
    with pytest.raises(ConfigError, match='Unknown int8 method'):
        quantize_image_tower(fp32_export, method='fp16')
    with pytest.raises(ConfigError, match='calibration images'):
        quantize_image_tower(fp32_export, method='static')


def test_topk_overlap_and_agreement():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((50, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    assert topk_overlap(queries, emb, emb) == 1.0
    # Reversed scores: a query's top 10 over -emb is its bottom 10.
    assert topk_overlap(queries, emb, -emb) == 0.0
    assert topk_overlap(queries, emb[:4], emb[:4], k=10) == 1.0  # k clipped
    result = int8_agreement(emb, emb, {'text': queries}, k=5)
    assert result == pytest.approx({'cosine min': 1.0, 'cosine mean': 1.0,
                                    'recall@5 text': 1.0})


def test_int8_benchmark_row_runs():
    rates = measure_int8_image_encode('tiny', image_batch=2, repeats=1)
    table = format_int8_table(rates)
    assert all(rate > 0 for rate in rates.values())
    row = table.splitlines()[-1]
    assert row.startswith('| int8 image tower vs fp32 image encode, CPU')
    assert row.endswith('x |')


def test_cli_int8_flags_are_checked(tmp_path, capsys):
    tool = load_tool('deployment/pytorch2onnx.py')
    with pytest.raises(SystemExit):  # static without --int8
        tool.parse_args([DIGITS_CFG, '--out', str(tmp_path),
                         '--int8-method', 'static'])
    assert tool.main([DIGITS_CFG, '--out', str(tmp_path), '--int8',
                      '--int8-method', 'static']) == 1
    assert ('error: --int8-method static needs --calibration-images'
            in capsys.readouterr().err)
    assert tool.main([DIGITS_CFG, '--out', str(tmp_path), '--int8',
                      '--int8-method', 'static', '--calibration-images',
                      str(tmp_path / 'no_such_folder')]) == 1
    assert 'is not a folder' in capsys.readouterr().err


def test_cli_int8_static_with_a_calibration_folder(tmp_path):
    from PIL import Image
    calibration = tmp_path / 'calibration'
    calibration.mkdir()
    for i, image in enumerate(sample_images(8)):
        Image.fromarray(image).save(calibration / f'{i}.png')
    out = str(tmp_path / 'export')
    tool = load_tool('deployment/pytorch2onnx.py')
    meta = tool.run(tool.parse_args([
        DIGITS_CFG, '--out', out, '--no-verify', '--int8', '--int8-method',
        'static', '--calibration-images', str(calibration)]))
    assert meta['image_int8']['method'] == 'static'
    assert meta['image_int8']['calibration_images'] == 8
    assert Int8ImageEncoder(out).encode(
        np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 64)


@pytest.fixture(scope='module')
def trained_digits(tmp_path_factory):
    """The digits CLIP trained from scratch for 8 of the tiny config's 24
    epochs (~2 min on one busy thread; 95.5 % zero-shot top-1 measured),
    exported with ``pytorch2onnx.py --int8``: ``(export folder, held-out
    image paths, their labels, the tool's sidecar)``."""
    from mmclip.apis import prepare_train_config, train
    from mmclip.datasets.digits import prepare_digits
    root = str(tmp_path_factory.mktemp('digits'))
    data_root = osp.join(root, 'data')
    prepare_digits(data_root)
    cfg = prepare_train_config(
        TRAIN_CFG, work_dir=osp.join(root, 'work_dir'),
        cfg_options={'train_dataloader.dataset.data_root': data_root,
                     'train_cfg.max_epochs': TRAIN_EPOCHS,
                     'cpu_threads': 1})
    train(cfg)
    checkpoint = osp.join(root, 'work_dir', f'epoch_{TRAIN_EPOCHS}.pth')
    out = osp.join(root, 'export')
    tool = load_tool('deployment/pytorch2onnx.py')
    meta = tool.run(tool.parse_args([DIGITS_CFG, checkpoint, '--out', out,
                                     '--int8']))
    with open(osp.join(data_root, 'val.csv')) as f:
        rows = list(csv.DictReader(f))
    return (out, [osp.join(data_root, r['filepath']) for r in rows],
            np.array([int(r['label']) for r in rows]), meta)


@pytest.mark.slow
def test_trained_digits_int8_search_and_zero_shot_follow_fp32(
        trained_digits):
    """The goal of issue 18: recall@10 >= 0.95 of searches over the int8
    embeddings against the float32 ones (text and image queries), and
    zero-shot top-1 within 1 point. Measured on an Intel Xeon (8 epochs):
    cosine min 0.9999, recall@10 0.987 (text) and 0.993 (image), top-1
    95.5 both (24 epochs: 0.993, 0.993, 98.3 both)."""
    out, images, labels, meta = trained_digits
    assert meta['image_int8']['method'] == 'dynamic'
    fp32 = OnnxCLIP(out, cache_dir=None)
    encoder = Int8ImageEncoder(out)
    batch = encoder.preprocess(images)
    reference = fp32.encode_image(batch, normalize=True)
    int8 = encoder.encode(batch)
    prompts = [t.format(c) for c in CLASSNAMES for t in ZERO_SHOT_TEMPLATES]
    result = int8_agreement(
        reference, int8,
        {'text': fp32.encode_text(prompts, normalize=True),
         'image': reference[::5]})
    print(f'trained digits, int8 vs fp32: {result}')
    assert result['cosine min'] >= 0.99
    assert result['recall@10 text'] >= 0.95
    assert result['recall@10 image'] >= 0.95
    classifier = fp32.text_classifier(CLASSNAMES, ZERO_SHOT_TEMPLATES)
    top1 = {name: 100 * np.mean((emb @ classifier).argmax(1) == labels)
            for name, emb in (('fp32', reference), ('int8', int8))}
    print(f'zero-shot top-1 on {len(labels)} held-out digits: {top1}')
    assert top1['fp32'] >= 85  # a trained model, not chance
    assert abs(top1['int8'] - top1['fp32']) <= 1.0
