"""tools/test.py on the digits data: metrics equal a direct computation."""
import csv
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO_ROOT, load_tool
from mmclip.datasets.digits import prepare_digits

CONFIG = osp.join(REPO_ROOT, 'configs', 'clip',
                  'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('digits'))
    prepare_digits(root)
    return root


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """An untrained tiny digits model with fixed random weights."""
    from mmclip.apis import get_model
    torch.manual_seed(0)
    model = get_model(CONFIG)
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path


def _direct_accuracy(checkpoint, root):
    """Top-1/top-5 (%) from encode_image and the classifier, in numpy."""
    from mmclip.apis import get_model, preprocess_images
    from mmclip.datasets.digits import CLASSNAMES, ZERO_SHOT_TEMPLATES
    from mmclip.models.utils import build_zero_shot_classifier
    model = get_model(CONFIG, pretrained=checkpoint)
    with open(osp.join(root, 'val.csv')) as f:
        rows = list(csv.DictReader(f))
    paths = [osp.join(root, r['filepath']) for r in rows]
    labels = np.array([int(r['label']) for r in rows])
    with torch.no_grad():
        img = model.encode_image(
            preprocess_images(model, paths), normalize=True).numpy()
        weights = build_zero_shot_classifier(
            model.text_embedder(), CLASSNAMES, ZERO_SHOT_TEMPLATES).numpy()
    ranked = np.argsort(-(img @ weights), axis=1)
    return {
        k: 100. * np.mean((ranked[:, :k] == labels[:, None]).any(1))
        for k in (1, 5)
    }, labels


@pytest.mark.slow
def test_test_tool_digits(tmp_path, digits, checkpoint, capsys):
    tool = load_tool('test.py')
    out = str(tmp_path / 'preds.json')
    show = str(tmp_path / 'show')
    metrics = tool.run(tool.parse_args([
        CONFIG, checkpoint, '--work-dir', str(tmp_path / 'work'),
        '--out', out, '--show-dir', show, '--show-num', '3',
        '--cfg-options', f'test_dataloader.dataset.data_root={digits}',
        f'test_dataloader.dataset.classes={digits}/classnames.txt',
        f'model.predict_head.cache_dir={tmp_path}/cache'
    ]))
    printed = capsys.readouterr().out
    direct, labels = _direct_accuracy(checkpoint, digits)
    for k in (1, 5):
        assert metrics[f'accuracy/top{k}'] == pytest.approx(
            direct[k], abs=1e-3)
        # Rounded, not float32's 99.99999237060547.
        assert re.search(rf'^accuracy/top{k}: \d+\.\d{{4}}$', printed,
                         re.M)
    # Untrained: near chance, so a wrong label/score pairing would show.
    assert 0 < direct[5] < 100

    with open(out) as f:
        preds = json.load(f)
    assert len(preds) == len(labels)
    assert [p['gt_label'][0] for p in preds] == labels.tolist()
    scores = np.array([p['pred_score'] for p in preds])
    np.testing.assert_allclose(scores.sum(1), 1., atol=1e-5)
    assert [p['pred_label'][0] for p in preds] == scores.argmax(1).tolist()
    top1 = 100. * np.mean(scores.argmax(1) == labels)
    assert top1 == pytest.approx(direct[1], abs=1e-3)
    assert preds[0]['img_path'].endswith('.png')

    pngs = sorted(osp.join(show, n) for n in os.listdir(show))
    assert len(pngs) == 3
    for png in pngs:
        with Image.open(png) as im:
            im.load()
            assert im.mode == 'RGB'
            assert im.width >= 224 and im.height > 224  # image + text panel
            pixels = np.asarray(im)
        assert pixels.std() > 0  # not blank
    assert len(list((tmp_path / 'cache').glob('*.pt'))) == 1


def test_prepare_test_config_errors(tmp_path):
    from mmclip.apis.test import prepare_test_config
    with pytest.raises(FileNotFoundError, match='clip_to_mmclip'):
        prepare_test_config(CONFIG, str(tmp_path / 'missing.pth'))
    cfg = prepare_test_config(CONFIG, None, out=str(tmp_path / 'p.json'))
    assert cfg.load_from is None
    assert [m['type'] for m in cfg.test_evaluator] == [
        'Accuracy', 'DumpPredictions'
    ]
    assert cfg.work_dir.endswith('clip_vit-tiny-p8_zeroshot-cls_digits-32px')


def test_show_predictions_hook_builds_from_a_config(tmp_path):
    from mmclip.registry import HOOKS
    hook = HOOKS.build(dict(type='ShowPredictionsHook', out_dir=str(tmp_path),
                            max_images=2))
    assert (hook.out_dir, hook.max_images) == (str(tmp_path), 2)
