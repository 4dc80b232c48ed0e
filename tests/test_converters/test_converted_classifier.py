"""A transformers ``CLIPForImageClassification`` converted by
``clip_to_mmclip.py`` is a classifier mmclip's tools run: ``tools/test.py``
scores it as transformers does, ``inference_model`` names its classes, it
fine-tunes from the converted checkpoint (``load_from`` or
``init_cfg=Pretrained``) and the fine-tuned one exports back. The wrong
kind of checkpoint for a config (a CLIP checkpoint with the classifier's
config, the classifier with a zero-shot CLIP config) is one ``error:``
line, where it used to run with random weights for the missing part."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_hf_classifier import TINY, hf_classifier

from conftest import REPO_ROOT, load_tool

CLASSES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
           'eight', 'nine']
ZERO_SHOT = (f'{REPO_ROOT}/configs/clip/'
             'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """``(transformers model, config, checkpoint)`` of a converted tiny
    10-class classifier."""
    from mmclip.converters import convert_file
    root = tmp_path_factory.mktemp('converted')
    hf = hf_classifier(TINY, CLASSES, seed=2)
    hf.save_pretrained(root / 'hf')
    convert_file(str(root / 'hf'), str(root / 'cls.pth'))
    return hf, str(root / 'cls.py'), str(root / 'cls.pth')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """12 random images of several sizes, ``train.csv`` and ``val.csv``
    (``filepath,label``)."""
    root = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    rows = [('filepath', 'label')]
    for i in range(12):
        size = (int(rng.integers(32, 64)), int(rng.integers(32, 64)))
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                        ).save(root / f'{i}.png')
        rows.append((f'{i}.png', int(rng.integers(0, 10))))
    for split in ('train', 'val'):
        with open(root / f'{split}.csv', 'w', newline='') as f:
            csv.writer(f).writerows(rows)
    return root


def image_paths(root):
    with open(root / 'val.csv') as f:
        rows = list(csv.DictReader(f))
    return [str(root / r['filepath']) for r in rows], \
        np.array([int(r['label']) for r in rows])


@torch.no_grad()
def hf_probabilities(hf, model, paths):
    """transformers' class probabilities on mmclip's preprocessed images."""
    from mmclip.apis import preprocess_images
    return hf(pixel_values=preprocess_images(model, paths)).logits.softmax(-1)


def test_test_tool_and_inference_score_as_transformers(
        tmp_path, converted, data_root):
    from mmclip.apis import get_model, inference_model
    hf, config, checkpoint = converted
    tool = load_tool('test.py')
    preds = tmp_path / 'preds.json'
    metrics = tool.run(tool.parse_args([
        config, checkpoint, '--work-dir', str(tmp_path / 'work'), '--out',
        str(preds), '--cfg-options',
        f'test_dataloader.dataset.data_root={data_root}',
        'test_dataloader.num_workers=0'
    ]))
    model = get_model(config, pretrained=checkpoint)
    paths, labels = image_paths(data_root)
    expected = hf_probabilities(hf, model, paths)
    top1 = 100. * np.mean(expected.argmax(-1).numpy() == labels)
    assert metrics['accuracy/top1'] == pytest.approx(top1, abs=1e-3)
    with open(preds) as f:
        scores = torch.tensor([p['pred_score'] for p in json.load(f)])
    torch.testing.assert_close(scores, expected, rtol=0, atol=1e-5)

    results = inference_model(model, paths, num_workers=0)
    assert [r['pred_class'] for r in results] == [
        CLASSES[i] for i in expected.argmax(-1)]
    torch.testing.assert_close(
        torch.tensor(np.stack([r['pred_scores'] for r in results])),
        expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize('start', ['load_from', 'init_cfg'])
def test_fine_tunes_from_the_converted_checkpoint_and_exports(
        tmp_path, converted, data_root, start):
    """Two AdamW steps at lr 1e-4 from the converted weights (each weight
    moves by at most ~2e-4, random initial weights would be far off); the
    fine-tuned classifier exports to transformers with its logits."""
    from transformers import CLIPForImageClassification

    from mmclip.apis import get_model, prepare_train_config, train
    _, config, checkpoint = converted
    begin = dict(load_from=f'load_from = {checkpoint!r}', init_cfg=(
        'model = dict(init_cfg=dict(type="Pretrained", '
        f'checkpoint={checkpoint!r}))'))[start]
    path = tmp_path / 'fine_tune.py'
    path.write_text(f'''_base_ = [{config!r}]
{begin}
train_dataloader = dict(
    batch_size=4, num_workers=0,
    dataset=dict(type='CsvClassificationDataset', data_root={str(data_root)!r},
                 ann_file='train.csv', pipeline=_base_.test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4))
train_cfg = dict(by_epoch=False, max_iters=2)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2,
                                     by_epoch=False))
randomness = dict(seed=0)
''')
    train(prepare_train_config(str(path), work_dir=str(tmp_path / 'work')))
    tuned_ckpt = str(tmp_path / 'work' / 'iter_2.pth')
    start_weights = torch.load(checkpoint)['state_dict']
    tuned = torch.load(tuned_ckpt, weights_only=True)['state_dict']
    moved = max((tuned[k] - v).abs().max().item()
                for k, v in start_weights.items())
    assert 0 < moved < 1e-3, moved

    exporter = load_tool('model_converters/mmclip_to_hf.py')
    assert exporter.main([str(path), tuned_ckpt, str(tmp_path / 'hf')]) == 0
    back = CLIPForImageClassification.from_pretrained(tmp_path / 'hf').eval()
    model = get_model(str(path), pretrained=tuned_ckpt)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(back(pixel_values=images).logits,
                                   model(images, mode='tensor'),
                                   rtol=0, atol=1e-5)
    assert back.config.id2label == dict(enumerate(CLASSES))


def test_test_tool_refuses_the_other_kind_of_checkpoint(
        tmp_path, converted, data_root, capsys):
    from mmclip.apis import get_model
    _, config, checkpoint = converted
    clip = tmp_path / 'clip.pth'
    torch.save(dict(state_dict=get_model(ZERO_SHOT).state_dict(), meta={}),
               clip)
    tool = load_tool('test.py')
    work = tmp_path / 'work'
    data = f'test_dataloader.dataset.data_root={data_root}'

    def error_line(*args):
        capsys.readouterr()
        assert tool.main([*args, '--work-dir', str(work)]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: '), lines
        return lines[0]

    line = error_line(config, str(clip), '--cfg-options', data)
    assert 'is a CLIP checkpoint' in line and 'zero-shot config' in line
    # the digits zero-shot config reads its own data: the test's images
    line = error_line(ZERO_SHOT, checkpoint, '--cfg-options',
                      f'test_dataloader.dataset.data_root={data_root}',
                      'test_dataloader.dataset.ann_file=val.csv',
                      f'test_dataloader.dataset.classes={CLASSES}')
    assert 'is a classifier checkpoint' in line
    assert f'Use it with its classifier config ({config}' in line
