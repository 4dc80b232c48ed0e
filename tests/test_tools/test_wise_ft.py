"""WiSE-FT (mmclip.apis.wise_ft and tools/model_converters/wise_ft.py): the
endpoints are reproduced exactly, mismatched checkpoints are named, the
zero-shot endpoint can be a CLIP checkpoint plus the fine-tune config, two
CLIP checkpoints (a caption fine-tune) mix both towers and the temperature,
and the command line sweeps alphas in a fresh folder."""
import csv
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from conftest import REPO_ROOT, load_tool
from mmclip.apis.wise_ft import (CheckpointMismatchError, checkpoint_kind,
                                 evaluate_wise_ft, interpolate_weights,
                                 load_wise_ft_endpoint, wise_ft,
                                 zero_shot_classifier_weights)
from mmclip.datasets.digits import CLASSNAMES

DIGITS_FT = osp.join(REPO_ROOT, 'configs', 'clip',
                     'clip_vit-tiny-p8_ft-1xb64-10e_digits-32px.py')
DIGITS_ZERO_SHOT = osp.join(REPO_ROOT, 'configs', 'clip',
                            'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """The digits fine-tune config on one held-out image per digit, a random
    CLIP checkpoint for it, and a "fine-tuned" classifier: the zero-shot
    one with every weight moved."""
    from sklearn.datasets import load_digits

    from mmclip.registry import MODELS
    root = tmp_path_factory.mktemp('wise_ft')
    digits = load_digits()
    (root / 'images').mkdir()
    rows = [('filepath', 'label')]
    for label in range(10):
        index = int(np.flatnonzero(digits.target == label)[0])
        grey = np.uint8(255 - digits.images[index] * 15)
        Image.fromarray(grey).resize((32, 32)).convert('RGB').save(
            root / 'images' / f'{label}.png')
        rows.append((f'images/{label}.png', label))
    with open(root / 'val.csv', 'w', newline='') as f:
        csv.writer(f).writerows(rows)
    (root / 'classnames.txt').write_text('\n'.join(CLASSNAMES) + '\n')

    cfg = Config.fromfile(DIGITS_FT)
    clip_cfg = {k: v for k, v in cfg.model.init_cfg.clip.items()
                if k not in ('head', 'predict_head')}
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(clip_cfg).state_dict(), meta={}),
               root / 'clip.pth')
    cfg.model.init_cfg.update(checkpoint=str(root / 'clip.pth'),
                              cache_dir=None)
    cfg.test_dataloader.dataset.update(
        data_root=str(root), classes=str(root / 'classnames.txt'))
    cfg.test_dataloader.batch_size = 10
    cfg.dump(str(root / 'ft.py'))

    zero_shot = zero_shot_classifier_weights(str(root / 'ft.py'),
                                             str(root / 'clip.pth'))
    gen = torch.Generator().manual_seed(1)
    tuned = {
        k: v + 0.05 * torch.randn(v.shape, generator=gen)
        for k, v in zero_shot.items()
    }
    torch.save(dict(state_dict=tuned,
                    meta=dict(dataset_meta=dict(classes=list(CLASSNAMES)))),
               root / 'tuned.pth')

    # A "caption fine-tune" of the CLIP: every weight of both towers and
    # the temperature moved; and the zero-shot config that scores it.
    clip_weights = torch.load(root / 'clip.pth',
                              weights_only=True)['state_dict']
    tuned_clip = {
        k: v + 0.05 * torch.randn(v.shape, generator=gen)
        for k, v in clip_weights.items()
    }
    torch.save(dict(state_dict=tuned_clip, meta={}), root / 'tuned_clip.pth')
    clip_cfg = Config.fromfile(DIGITS_ZERO_SHOT)
    clip_cfg.model.predict_head.cache_dir = None
    clip_cfg.test_dataloader.dataset.update(
        data_root=str(root), classes=str(root / 'classnames.txt'))
    clip_cfg.test_dataloader.batch_size = 10
    clip_cfg.dump(str(root / 'zero_shot.py'))
    return dict(root=root, config=str(root / 'ft.py'),
                clip=str(root / 'clip.pth'), tuned=str(root / 'tuned.pth'),
                zero_shot=zero_shot, tuned_weights=tuned,
                clip_weights=clip_weights, tuned_clip=str(root /
                                                          'tuned_clip.pth'),
                tuned_clip_weights=tuned_clip,
                clip_config=str(root / 'zero_shot.py'))


def test_endpoints_are_exact_and_the_middle_is_the_mean(setup):
    zero_shot, tuned = setup['zero_shot'], setup['tuned_weights']
    for alpha, expected in ((0, zero_shot), (1, tuned)):
        mixed = interpolate_weights(zero_shot, tuned, alpha)
        assert mixed.keys() == expected.keys()
        for key, value in expected.items():
            assert torch.equal(mixed[key], value), (alpha, key)
    half = interpolate_weights(zero_shot, tuned, 0.5)
    for key in tuned:
        torch.testing.assert_close(half[key],
                                   (zero_shot[key] + tuned[key]) / 2)
    with pytest.raises(ValueError, match=r'in \[0, 1\]'):
        interpolate_weights(zero_shot, tuned, 1.5)


def test_files_from_a_clip_checkpoint_and_the_config(setup, tmp_path):
    """ZERO_SHOT given as the CLIP checkpoint: the config's ZeroShotInit
    rebuilds the classifier the fine-tuning started from."""
    for alpha, expected in ((0, setup['zero_shot']),
                            (1, setup['tuned_weights'])):
        out = str(tmp_path / f'alpha{alpha}.pth')
        wise_ft(setup['clip'], setup['tuned'], out, alpha=alpha,
                config=setup['config'])
        saved = torch.load(out, weights_only=True)
        for key, value in expected.items():
            assert torch.equal(saved['state_dict'][key], value), key
        assert saved['meta']['wise_ft']['alpha'] == alpha
        # the fine-tuned run's class names travel on
        assert saved['meta']['dataset_meta']['classes'] == list(CLASSNAMES)
    # The zero-shot classifier file works as ZERO_SHOT too.
    out = str(tmp_path / 'again.pth')
    wise_ft(str(tmp_path / 'alpha0.pth'), setup['tuned'], out, alpha=0)
    assert torch.equal(
        torch.load(out, weights_only=True)['state_dict']['head.fc.weight'],
        setup['zero_shot']['head.fc.weight'])


def test_errors_name_the_parameters_and_the_fix(setup, tmp_path):
    zero_shot, tuned = setup['zero_shot'], dict(setup['tuned_weights'])
    tuned['head.fc.weight'] = tuned['head.fc.weight'][:7]
    del tuned['backbone.proj']
    with pytest.raises(CheckpointMismatchError) as info:
        interpolate_weights(zero_shot, tuned, 0.5)
    message = str(info.value)
    assert 'only in the zero-shot weights: backbone.proj' in message
    assert 'head.fc.weight (10, 64) vs (7, 64)' in message
    with pytest.raises(ValueError, match='pass the fine-tune config'):
        load_wise_ft_endpoint(setup['clip'])
    with pytest.raises(ValueError, match='ZeroShotInit'):
        zero_shot_classifier_weights(
            osp.join(REPO_ROOT, 'configs', 'clip',
                     'clip_vit-base-p16_lp-ft-8xb256-amp-50e_in1k.py'),
            setup['clip'])

    # The command line: one message, exit status 1.
    torch.save(dict(state_dict=tuned, meta={}), tmp_path / 'other.pth')
    tool = load_tool('model_converters/wise_ft.py')
    assert tool.main([setup['tuned'], str(tmp_path / 'other.pth'),
                      str(tmp_path / 'out.pth')]) == 1
    assert not osp.exists(tmp_path / 'out.pth')


@pytest.mark.slow
def test_command_line_sweep_in_a_fresh_folder(setup, tmp_path):
    cmd = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'model_converters', 'wise_ft.py'),
        setup['clip'], setup['tuned'], 'curve.png', '--config',
        setup['config'], '--alphas', '0', '0.5', '1'
    ]
    proc = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines)
                  if line.split()[:1] == ['alpha'])
    table = [line.split() for line in lines[header:header + 4]]
    assert table[0] == ['alpha', 'accuracy/top1', 'accuracy/top5']
    assert [row[0] for row in table[1:]] == ['0.00', '0.50', '1.00']
    assert (tmp_path / 'curve.png').stat().st_size > 0
    results = json.loads((tmp_path / 'curve.json').read_text())
    assert [r['alpha'] for r in results] == [0, 0.5, 1]
    assert all(0 <= r['accuracy/top1'] <= 100 for r in results)


def test_one_checkpoint_with_cfg_options(setup, tmp_path):
    """``--alpha`` with ``--config`` and ``--cfg-options``: the zero-shot
    endpoint is the classifier of the overridden config (here other
    templates), not of the config as written."""
    templates = tmp_path / 'templates.txt'
    templates.write_text('a drawing of the number {}.\n{} on paper\n')
    option = f'model.init_cfg.templates={templates}'
    expected = zero_shot_classifier_weights(
        setup['config'], setup['clip'],
        cfg_options={'model.init_cfg.templates': str(templates)})
    assert not torch.equal(expected['head.fc.weight'],
                           setup['zero_shot']['head.fc.weight'])
    out = str(tmp_path / 'alpha0.pth')
    tool = load_tool('model_converters/wise_ft.py')
    assert tool.main([setup['clip'], setup['tuned'], out, '--alpha', '0',
                      '--config', setup['config'], '--cfg-options',
                      option]) == 0
    saved = torch.load(out, weights_only=True)['state_dict']
    for key, value in expected.items():
        assert torch.equal(saved[key], value), key


def test_two_clip_checkpoints_mix_both_towers_and_the_temperature(
        setup, tmp_path):
    """A caption fine-tune is a CLIP model: WiSE-FT with the CLIP it
    started from needs no config, mixes every weight of both towers and
    logit_scale, and reproduces the endpoints bit for bit."""
    start, tuned = setup['clip_weights'], setup['tuned_clip_weights']
    assert checkpoint_kind(start) == checkpoint_kind(tuned) == 'clip'
    assert checkpoint_kind(setup['zero_shot']) == 'classifier'
    assert any(k.startswith('backbone.') for k in tuned)
    assert any(k.startswith('text_encoder.') for k in tuned)
    assert 'logit_scale' in tuned
    for alpha, expected in ((0, start), (1, tuned)):
        out = str(tmp_path / f'clip_alpha{alpha}.pth')
        wise_ft(setup['clip'], setup['tuned_clip'], out, alpha=alpha)
        saved = torch.load(out, weights_only=True)['state_dict']
        assert saved.keys() == expected.keys()
        for key, value in expected.items():
            assert torch.equal(saved[key], value), (alpha, key)
    mixed = wise_ft(setup['clip'], setup['tuned_clip'],
                    str(tmp_path / 'half.pth'), alpha=0.5)
    for key in tuned:
        torch.testing.assert_close(mixed[key], (start[key] + tuned[key]) / 2)
    assert not torch.equal(mixed['logit_scale'], start['logit_scale'])


def test_integer_buffers_are_copied_or_refused(setup):
    start = dict(setup['clip_weights'], steps=torch.tensor(3))
    tuned = dict(setup['tuned_clip_weights'], steps=torch.tensor(3))
    assert torch.equal(interpolate_weights(start, tuned, 0.5)['steps'],
                       torch.tensor(3))
    tuned['steps'] = torch.tensor(4)
    with pytest.raises(CheckpointMismatchError, match='steps is not a '
                       'floating-point tensor and differs'):
        interpolate_weights(start, tuned, 0.5)


def test_a_clip_model_and_a_classifier_are_refused(setup, tmp_path, capsys):
    """Either order: one error line that names both files and the fix,
    and no output file."""
    tool = load_tool('model_converters/wise_ft.py')
    out = tmp_path / 'out.pth'
    capsys.readouterr()
    assert tool.main([setup['tuned'], setup['tuned_clip'], str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ')
    assert f'{setup["tuned_clip"]} is a CLIP model' in err[0]
    assert f'{setup["tuned"]} is a classifier' in err[0]
    assert 'pass the CLIP checkpoint it started from' in err[0]
    # A classifier fine-tune from a CLIP checkpoint needs the config; a
    # fine-tuned CLIP model is no classifier endpoint either.
    assert tool.main([setup['tuned_clip'], setup['tuned'], str(out)]) == 1
    assert 'pass the fine-tune config' in capsys.readouterr().err
    assert not out.exists()


def test_sweep_of_clip_checkpoints_scores_zero_shot(setup, tmp_path):
    """--alphas with a CLIPModel config: zero-shot accuracy per alpha, the
    endpoints' as evaluating them alone; a classifier config is refused."""
    results = evaluate_wise_ft(setup['clip_config'], setup['clip'],
                               setup['tuned_clip'], [0, 0.5, 1],
                               work_dir=str(tmp_path / 'sweep'))
    assert [r['alpha'] for r in results] == [0, 0.5, 1]
    alone = evaluate_wise_ft(setup['clip_config'], setup['tuned_clip'],
                             setup['tuned_clip'], [1],
                             work_dir=str(tmp_path / 'alone'))
    assert results[2]['accuracy/top1'] == alone[0]['accuracy/top1']
    assert all(0 <= r['accuracy/top1'] <= 100 for r in results)
    from mmclip.errors import ConfigError
    with pytest.raises(ConfigError, match='builds a classifier: pass a '
                       'config whose CLIPModel scores zero-shot'):
        evaluate_wise_ft(setup['config'], setup['clip'], setup['tuned_clip'],
                         [0.5], work_dir=str(tmp_path / 'wrong'))
