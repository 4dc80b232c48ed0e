"""Linear probe: library, metric, CLI; retrieval configs parse."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from mmclip.evaluation import LinearProbeMetric, linear_probe
from mmclip.registry import METRICS

from conftest import REPO_ROOT, load_tool


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


def test_metric_kfold(digits):
    x_tr, _, y_tr, _ = digits
    metric = METRICS.build(
        dict(type='LinearProbeMetric', num_folds=3, Cs=[1e-2, 1.0],
             max_iter=200, feature_key='feat'))
    assert isinstance(metric, LinearProbeMetric)
    x, y = x_tr[:600], y_tr[:600]
    metric.process(None, [dict(feat=torch.from_numpy(f), gt_label=
                               torch.tensor([int(lab)]))
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
    res = tool.main([cfg_path, ckpt, '--cs', '0.1', '1', '--out', out,
                     '--val-fraction', '0.34'])
    assert osp.isfile(out)
    assert 0 <= res['top1'] <= 100 and res['C'] in (0.1, 1.0)


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
