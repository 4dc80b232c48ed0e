"""Linear probe: library, metric, CLI (on the shipped digits configs, and
its refusal of unlabelled data); retrieval configs parse."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import mmclip.evaluation
from conftest import REPO_ROOT, TINY_VISION, load_tool
from mmclip.datasets.digits import prepare_digits
from mmclip.evaluation import (LinearProbeInputError, LinearProbeMetric,
                               extract_labelled_features, image_features,
                               linear_probe, load_image_tower)
from mmclip.registry import METRICS

DIGITS_CONFIGS = osp.join(REPO_ROOT, 'configs', 'clip')
PRETRAIN = 'clip_vit-tiny-p8_1xb32-24e_digits-32px.py'
ZERO_SHOT = 'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py'
FINE_TUNE = 'clip_vit-tiny-p8_ft-1xb64-10e_digits-32px.py'


@pytest.fixture(scope='module')
def digits():
    x, y = load_digits(return_X_y=True)  # raw 8x8 pixels as "features"
    return train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)


def test_grid_selects_by_validation(digits):
    x_tr, x_te, y_tr, y_te = digits
    cs = [1e-6, 1e-3, 1e-1, 1e3]
    res = linear_probe(x_tr, y_tr, x_te, y_te, Cs=cs, max_iter=300)
    assert res['top1'] > 90
    swept = dict(res['sweep'])
    assert sorted(swept) == pytest.approx(cs)
    # The chosen C is the best on validation; 1e-6 underfits badly.
    assert res['val_top1'] == max(swept.values())
    assert swept[res['C']] == res['val_top1']
    assert res['C'] != pytest.approx(1e-6)
    assert swept[min(swept)] < 90
    assert res['classifier'].C == pytest.approx(res['C'])


def test_binary_search(digits):
    x_tr, x_te, y_tr, y_te = digits
    res = linear_probe(x_tr[:400], y_tr[:400], x_te, y_te, max_iter=200)
    log_cs = np.log10([c for c, _ in res['sweep']])
    # 7 starting points 1e-6, 1e-4, ..., 1e6, then 2 per halving down to
    # 1/8 decade around the best (those outside [-6, 6] are skipped).
    assert np.allclose(log_cs[np.isin(log_cs, np.arange(-6, 7, 2))],
                       np.arange(-6, 7, 2))
    assert 7 < len(log_cs) <= 15
    steps = np.diff(np.sort(log_cs))
    assert steps.min() == pytest.approx(0.125)
    assert res['val_top1'] == max(v for _, v in res['sweep'])
    assert res['top1'] > 85


def test_accuracy_ties_go_to_the_lowest_validation_loss():
    """Well-separated features score 100 % on validation at every C; the
    smallest C then gets every argmax right with near-uniform probabilities
    and refits unreliably (the trained digits CLIP's probe scored 60 % on
    test at C=1e-6, 98 % at the C of lowest validation loss)."""
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1, (10, 64))
    means *= 13 / np.linalg.norm(means, axis=1, keepdims=True)

    def draw(n):
        y = rng.integers(0, 10, n)
        return means[y] + rng.normal(0, 1.5, (n, 64)), y

    res = linear_probe(*draw(1000), *draw(200), Cs=[1e-4, 1e-2, 1, 100])
    assert [v for _, v in res['sweep']] == [100.] * 4
    assert res['C'] == pytest.approx(100)
    assert res['top1'] == 100


def test_metric_kfold(digits):
    x_tr, _, y_tr, _ = digits
    metric = METRICS.build(
        dict(type='LinearProbeMetric', num_folds=3, Cs=[1e-2, 1.0],
             max_iter=200, feature_key='feat'))
    assert isinstance(metric, LinearProbeMetric)
    x, y = x_tr[:600], y_tr[:600]
    metric.process(None, [dict(feat=torch.from_numpy(f),
                               gt_label=torch.tensor([int(lab)]))
                          for f, lab in zip(x, y)])
    out = metric.evaluate(len(x))
    assert out['linear_probe/top1'] > 90
    assert out['linear_probe/C'] in (pytest.approx(1e-2), pytest.approx(1))
    assert 0 <= out['linear_probe/top1_std'] < 10
    with pytest.raises(KeyError, match='gt_label'):
        metric.process(None, [dict(feat=torch.zeros(3))])


def test_cli_end_to_end(tmp_path, tiny_clip_cfg):
    # Two-class image folders, CustomDataset-style, and a tiny model.
    rng = np.random.default_rng(0)
    for split in ('train', 'test'):
        for cls, level in (('dark', 40), ('light', 215)):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(6):
                img = np.clip(rng.normal(level, 20, (36, 36, 3)), 0, 255)
                Image.fromarray(img.astype(np.uint8)).save(d / f'{i}.png')
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=32, edge='short'),
        dict(type='CenterCrop', crop_size=32),
        dict(type='PackInputs'),
    ]

    def loader(split, pipe):
        return dict(
            batch_size=4, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(type='CustomDataset', data_root=str(tmp_path),
                         data_prefix=split, pipeline=pipe))

    cfg = Config(dict(
        default_scope='mmclip', model=tiny_clip_cfg,
        train_dataloader=loader('train', [dict(type='LoadImageFromFile')]),
        test_dataloader=loader('test', pipeline)))
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    from mmclip.registry import MODELS
    ckpt = str(tmp_path / 'model.pth')
    torch.save(MODELS.build(tiny_clip_cfg).state_dict(), ckpt)
    tool = load_tool('analysis_tools/linear_probe.py')
    out = str(tmp_path / 'res.json')
    res = tool.run(tool.parse_args([
        cfg_path, ckpt, '--cs', '0.1', '1', '--out', out,
        '--val-fraction', '0.34']))
    assert osp.isfile(out)
    assert 0 <= res['top1'] <= 100 and res['C'] in (0.1, 1.0)
    assert res['num_samples'] == {'train': 12, 'test_dataloader': 12}


@pytest.fixture(scope='module')
def digits_project(tmp_path_factory):
    """A user's folder with data/digits prepared, as the digits configs
    expect it, and a tiny digits CLIP with random weights."""
    from mmclip.apis import get_model
    project = tmp_path_factory.mktemp('project')
    prepare_digits(str(project / 'data' / 'digits'))
    torch.manual_seed(0)
    clip = get_model(osp.join(DIGITS_CONFIGS, PRETRAIN))
    torch.save(dict(state_dict=clip.state_dict(), meta={}),
               project / 'clip.pth')
    return project


def run_probe(cwd, config, *args):
    """``python tools/analysis_tools/linear_probe.py`` in ``cwd``."""
    tool = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'linear_probe.py')
    return subprocess.run(
        [sys.executable, tool, osp.join(DIGITS_CONFIGS, config), *args],
        cwd=str(cwd), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_tool_runs_on_the_digits_fine_tune_config(digits_project):
    """As its docstring says: the labelled digits splits of the shipped
    fine-tune config (train.csv's label column), a CLIP checkpoint, from
    the user's folder."""
    proc = run_probe(digits_project, FINE_TUNE, 'clip.pth', '--out',
                     'probe.json')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'train_dataloader: 1438 samples, test_dataloader: 359, 64-d ' \
        'features' in proc.stdout
    with open(digits_project / 'probe.json') as f:
        res = json.load(f)
    # Even random features of the tiny tower separate the digits well.
    assert res['top1'] > 50 and res['val_top1'] > 50
    assert f"linear probe top-1: {res['top1']:.2f}%" in proc.stdout


@pytest.mark.slow
def test_unlabelled_split_is_one_error_naming_the_fix(digits_project):
    # The zero-shot config's train split is the captioned pretraining data.
    proc = run_probe(digits_project, ZERO_SHOT, 'clip.pth')
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(
        'error: train_dataloader of ') and 'Traceback' not in proc.stderr
    assert 'ImageTextDataset on data/digits/train.csv) has no class labels' \
        in lines[0]
    assert FINE_TUNE in lines[0] and 'prepare_digits.py' in lines[0]


def test_any_checkpoint_with_the_image_tower_serves(tmp_path, tiny_clip_cfg):
    """CLIP and classifier checkpoints name the tower backbone.*; only it
    is loaded, and a mismatch or a foreign file names the problem."""
    from mmclip.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmclip'):
        classifier = MODELS.build(dict(
            type='ImageClassifier', backbone=tiny_clip_cfg['vision_backbone'],
            head=dict(type='CLIPClsHead', num_classes=3, in_channels=32)))
        clip = MODELS.build(tiny_clip_cfg)
    path = str(tmp_path / 'classifier.pth')
    torch.save(dict(state_dict=classifier.state_dict(), meta={}), path)
    load_image_tower(clip, path)
    for key, value in classifier.backbone.state_dict().items():
        torch.testing.assert_close(clip.backbone.state_dict()[key], value)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(image_features(clip, images),
                                   image_features(classifier, images))

    torch.save(dict(state_dict={'visual.proj': torch.zeros(2)}), path)
    with pytest.raises(LinearProbeInputError, match='clip_to_mmclip'):
        load_image_tower(clip, path)
    narrower = dict(tiny_clip_cfg['vision_backbone'],
                    arch=dict(TINY_VISION, proj_dims=16))
    with DefaultScope.overwrite_default_scope('mmclip'):
        other = MODELS.build(narrower)
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in
                                other.state_dict().items()}), path)
    with pytest.raises(LinearProbeInputError,
                       match=r'does not match the model config: .*proj'):
        load_image_tower(clip, path)
    partial = {f'backbone.{k}': v for k, v in
               classifier.backbone.state_dict().items() if k != 'proj'}
    torch.save(dict(state_dict=dict(partial, **{
        'backbone.extra': torch.zeros(1)})), path)
    with pytest.raises(LinearProbeInputError, match='missing: backbone.proj; '
                       'unexpected: backbone.extra'):
        load_image_tower(clip, path)


def test_extract_labelled_features(tiny_clip_cfg):
    """A labelled loader's features and labels, under a name of its own:
    ``mmclip.apis.extract_features`` is the user-facing embedding call."""
    from mmpretrain.structures import DataSample

    from mmclip.registry import MODELS
    assert not hasattr(mmclip.evaluation, 'extract_features')
    with DefaultScope.overwrite_default_scope('mmclip'):
        clip = MODELS.build(tiny_clip_cfg)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    loader = [
        dict(inputs=list(images[:2]),
             data_samples=[DataSample().set_gt_label(2),
                           DataSample().set_gt_label(0)]),
        dict(inputs=list(images[2:]),
             data_samples=[DataSample().set_gt_label(1)])]
    feats, labels = extract_labelled_features(clip, loader, normalize=True)
    assert labels.tolist() == [2, 0, 1] and labels.dtype == np.int64
    with torch.no_grad():
        direct = clip.encode_image(clip.data_preprocessor(
            dict(inputs=list(images)), False)['inputs'], normalize=True)
    np.testing.assert_allclose(feats, direct.numpy(), atol=1e-5)
    with pytest.raises(LinearProbeInputError, match='no class label'):
        extract_labelled_features(clip, [dict(
            inputs=list(images[:1]), data_samples=[DataSample()])])


@pytest.mark.parametrize('name', [
    'clip/clip_vit-base-p32_retrieval_coco.py',
    'clip/clip_vit-base-p16_retrieval_flickr30k.py',
])
def test_retrieval_configs_parse(name):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', name))
    assert cfg.model.predict_head.type == 'ImageTextRetrievalHead'
    assert cfg.test_evaluator.type == 'ImageTextRetrievalMetric'
    assert cfg.test_dataloader.dataset.test_mode
    assert cfg.default_scope == 'mmclip'
    assert 'p16' not in name or cfg.model.vision_backbone.patch_size == 16
