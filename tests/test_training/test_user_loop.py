"""The user's loop through the command line, from a fresh folder outside the
repository: prepare the digits, pretrain, test, infer, fine-tune from the
pretrained checkpoint, test, WiSE-FT, test. Tiny (a subset, 2 epochs): it
checks that every step runs and hands the next one what it needs, not
accuracy (tests/test_training/test_digits_pretraining.py does)."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

# The user's whole loop through the command-line tools (over a minute).
pytestmark = pytest.mark.slow

CONFIGS = osp.join(REPO_ROOT, 'configs', 'clip')
PRETRAIN = osp.join(CONFIGS, 'clip_vit-tiny-p8_1xb32-24e_digits-32px.py')
ZERO_SHOT = osp.join(CONFIGS, 'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')
FINE_TUNE = osp.join(CONFIGS, 'clip_vit-tiny-p8_ft-1xb64-10e_digits-32px.py')
TOP1 = re.compile(r'^accuracy/top1: (\d+\.\d+)$', re.M)
# The validation line of the fine-tune's last epoch in its log.
VAL_TOP1 = re.compile(r'Epoch\(val\) \[2\]\[\d+/\d+\]\s+accuracy/top1: '
                      r'(\d+\.\d+)')


def run_tool(cwd, tool, *args):
    """``python <repo>/tools/TOOL ARGS`` in ``cwd``; the zero-shot cache
    (``~/.cache/mmclip``) goes to a HOME inside the temp folder."""
    env = dict(os.environ, HOME=str(cwd / 'home'))
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', tool), *args],
        cwd=str(cwd), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (tool, proc.stdout[-2000:],
                                  proc.stderr[-3000:])
    return proc.stdout + proc.stderr


def test_train_test_infer_fine_tune_wise_ft_from_any_folder(tmp_path):
    cwd = tmp_path / 'my_project'
    cwd.mkdir()
    # The configs read data/digits, relative to where the user is.
    out = run_tool(cwd, 'dataset_converters/prepare_digits.py', 'data/digits')
    assert 'written' in out
    assert (cwd / 'data' / 'digits' / 'val_shifted.csv').is_file()

    # Pretraining, tiny: 128 images, 2 epochs (8 steps).
    run_tool(cwd, 'train.py', PRETRAIN, '--cfg-options',
             'train_dataloader.dataset.indices=128', 'train_cfg.max_epochs=2')
    clip_ckpt = osp.join('work_dirs', 'clip_vit-tiny-p8_1xb32-24e_digits-32px',
                         'epoch_2.pth')
    assert (cwd / clip_ckpt).is_file()

    zero_shot = run_tool(cwd, 'test.py', ZERO_SHOT, clip_ckpt,
                         '--cfg-options', 'model.predict_head.cache_dir=None')
    zero_shot_top1 = float(TOP1.findall(zero_shot)[-1])
    assert 0 <= zero_shot_top1 <= 100

    images = [f'data/digits/images/{i:04d}.png' for i in (3, 7)]
    inferred = run_tool(cwd, 'inference.py', *images, '--model',
                        'clip_vit-tiny-p8_zeroshot-cls_digits-32px',
                        '--checkpoint', clip_ckpt, '--cfg-options',
                        'model.predict_head.cache_dir=None')
    assert f'checkpoint: {clip_ckpt} (loaded)' in inferred
    assert all(osp.basename(i) in inferred for i in images)

    # Fine-tune from that checkpoint, as the config's header says, on 128
    # labelled images of train.csv for 2 epochs.
    trained = run_tool(cwd, 'train.py', FINE_TUNE, '--cfg-options',
                       f'model.init_cfg.checkpoint={clip_ckpt}',
                       'train_dataloader.dataset.indices=128',
                       'train_cfg.max_epochs=2')
    ft_dir = osp.join('work_dirs', 'clip_vit-tiny-p8_ft-1xb64-10e_digits-32px')
    ft_ckpt = osp.join(ft_dir, 'epoch_2.pth')
    assert (cwd / ft_ckpt).is_file()
    logs = list((cwd / ft_dir).glob('*/*.log'))
    assert logs, trained[-2000:]
    val_top1 = VAL_TOP1.findall(logs[0].read_text())
    assert val_top1, 'no validation accuracy after epoch 2'

    # tools/test.py on the fine-tuned checkpoint: the held-out digits are
    # the fine-tune's validation set, so the same accuracy.
    tested = run_tool(cwd, 'test.py', FINE_TUNE, ft_ckpt)
    assert float(TOP1.findall(tested)[-1]) == pytest.approx(
        float(val_top1[-1]), abs=1e-3)

    # WiSE-FT between the CLIP checkpoint (made into its zero-shot
    # classifier by the fine-tune config) and the fine-tuned one.
    wise = run_tool(cwd, 'model_converters/wise_ft.py', clip_ckpt, ft_ckpt,
                    'wise_ft.pth', '--alpha', '0.5', '--config', FINE_TUNE)
    assert (cwd / 'wise_ft.pth').is_file(), wise[-2000:]
    # On the noisy copy of the held-out digits, as docs/fine_tuning.md does.
    tested = run_tool(cwd, 'test.py', FINE_TUNE, 'wise_ft.pth',
                      '--cfg-options',
                      'test_dataloader.dataset.ann_file=val_shifted.csv')
    assert 0 <= float(TOP1.findall(tested)[-1]) <= 100
    # The console shows the result; the run's log in its work dir holds the
    # config, with the test set --cfg-options named.
    test_logs = sorted((cwd / 'work_dirs').glob(
        'clip_vit-tiny-p8_ft-1xb64-10e_digits-32px/*/*.log'))
    assert "ann_file='val_shifted.csv'" in test_logs[-1].read_text()
